from html.parser import HTMLParser

import numpy as np

from heartml.reports.profile import DataProfile, profile_frame, render_profile_html


def test_profile_counts_missing_markers_zeros_and_balance(heart_raw, heart_spec):
    raw = heart_raw.copy()
    raw.loc[[0, 1, 2], "MaxHR"] = np.nan
    raw = raw.assign(patient_id=range(918))
    profile = profile_frame(raw, heart_spec, "bundled://heart")
    columns = {c.name: c for c in profile.column_profiles}
    assert (profile.rows, profile.columns, profile.duplicate_rows) == (918, 13, 0)
    assert profile.target_counts == {"0": 410, "1": 508}
    cholesterol = columns["Cholesterol"]
    assert (cholesterol.markers, cholesterol.zeros, cholesterol.missing) == (172, 172, 0)
    assert columns["RestingBP"].markers == 1 and columns["MaxHR"].missing == 3
    assert columns["Oldpeak"].zeros == 368 and columns["Oldpeak"].markers == 0  # zeros that are real values
    assert columns["Age"].min == 28 and columns["Age"].max == 77 and columns["Age"].median == heart_raw["Age"].median()
    assert columns["ChestPainType"].top_values == {"ASY": 496, "NAP": 203, "ATA": 173, "TA": 46}
    assert columns["ChestPainType"].mean is None
    assert (columns["HeartDisease"].role, columns["FastingBS"].role, columns["patient_id"].role) == \
        ("target", "binary", "undeclared")
    assert profile.missing_total == 172 + 1 + 3
    assert DataProfile.model_validate_json(profile.model_dump_json()) == profile


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_static_and_escaped(heart_raw, heart_spec):
    raw = heart_raw.assign(**{"<script>alert(1)</script>": 1})
    page = render_profile_html(profile_frame(raw, heart_spec, "file:///tmp/<x>.csv"))
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and "iframe" not in parsed.tags and "img" not in parsed.tags
    assert not any(a.startswith("on") for a in parsed.attributes)
    assert "http://" not in page and "https://" not in page and "url(" not in page
    text = " ".join(parsed.text)
    assert "<script>alert(1)</script>" in text  # shown as text, not markup
    assert parsed.tags.count("tr") == 1 + 2 + 1 + 13  # balance header + 2 labels, column header + 13 columns
    assert "172" in text and "55.3%" in text and "file:///tmp/<x>.csv" in text

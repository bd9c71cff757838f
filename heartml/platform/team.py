"""The servers a team shares, run on this machine: `python run.py stack up team` / `stack down team`.

Started in this order, on loopback, each in its own session (they outlive run.py), and stopped (the two servers,
then the stores) by the process ids saved in `<home>/state/team.json` (a recycled id is never signalled, see
processes.py):
- mariadb:    MariaDB (Debian's `mariadb-server`), the ZenML server's MySQL-compatible database;
- postgresql: PostgreSQL, the MLflow tracking and registry database and MLflow's user store;
- azurite:    Azure Blob Storage (Azurite): ZenML's artifact store and MLflow's artifact root;
- zenml:      the ZenML server app under uvicorn, as ZenML's own image runs it, with password and API-key login;
- mlflow:     `mlflow server` with MLflow's basic-auth app, artifacts proxied to Azurite.
Accounts: `admin` (both servers' administrator), `trainer` (ZenML service account; MLflow role `trainers`: MANAGE on
every experiment and registered model) and `reader` (ZenML service account; MLflow's default READ only).

Credentials are generated on the first `up` and never leave `<home>` (folders 0700, files 0600): the servers get
theirs through the environment, and each account's client settings are in `<home>/accounts/<account>.env`, to be
exported before run.py (`set -a; . <home>/accounts/trainer.env; set +a`). No password is on a command line (`ps`
shows none) or in a log. The home defaults to `<ZenML local stores>/team` (root: /var/lib/heartml/team, which the
`postgres` account that runs PostgreSQL for root can reach); HEARTML_TEAM_HOME moves it.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import psutil
import requests

from heartml.core.errors import InputError
from heartml.platform import azurite as azurite_service
from heartml.platform.dashboard import http_ok
from heartml.platform.declarations import TeamServersDecl
from heartml.platform.processes import SavedProcess, stop_process

SERVICES = ("mariadb", "postgresql", "azurite", "zenml", "mlflow")
ACCOUNTS = ("admin", "trainer", "reader")
TRAINERS_ROLE = "trainers"
LOOPBACK = "127.0.0.1"
# Server-side credentials (database passwords, signing and encryption keys), generated once.
_SERVER_SECRETS = ("mariadb_root", "zenml_database", "postgres_superuser", "mlflow_database", "admin_password",
                   "trainer_password", "reader_password", "zenml_jwt_key", "zenml_encryption_key", "mlflow_flask_key",
                   "optuna_database")
TUNERS = ("admin", "trainer")  # the accounts that get the shared tuning storage (HEARTML_TUNING_STORAGE)


class TeamStackError(InputError):
    """A team server cannot be started, reached or set up; one line naming the server and its log."""


@dataclass(frozen=True)
class Team:
    """Where the team's servers keep their data and which loopback ports they serve."""

    servers: TeamServersDecl

    @property
    def home(self) -> Path:
        return Path(self.servers.home).resolve()

    def folder(self, service: str) -> Path:
        return self.home / service

    def log(self, service: str) -> Path:
        if service == "postgresql":  # written by the postgres account, in the folder it owns
            return self.folder(service) / "postgresql.log"
        return self.home / "logs" / f"{service}.log"

    def port(self, service: str) -> int:
        return int(getattr(self.servers, f"{service}_port"))

    @property
    def zenml_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port('zenml')}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port('mlflow')}"

    @property
    def azurite(self) -> azurite_service.Azurite:
        return azurite_service.Azurite(host=LOOPBACK, port=self.port("azurite"), location=self.folder("azurite"))

    def tuning_storage(self, keys: Dict[str, str]) -> str:
        """The Optuna storage URL of the team's PostgreSQL (with its password: it lives in account files only)."""
        return (f"postgresql+psycopg2://optuna:{keys['optuna_database']}@{LOOPBACK}:{self.port('postgresql')}"
                "/optuna")

    @property
    def state_file(self) -> Path:
        # In its own folder: the home itself stays enterable by the postgres account (0711 for root).
        return self.home / "state" / "team.json"

    def account_file(self, account: str) -> Path:
        return self.home / "accounts" / f"{account}.env"


# ---------------------------------------------------------------------------------------------------------------
# Credentials and saved processes


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    _private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def server_secrets(team: Team) -> Dict[str, str]:
    """The servers' generated credentials (`<home>/secrets/servers.json`, 0600), created on first use."""
    path = team.home / "secrets" / "servers.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    missing = [name for name in _SERVER_SECRETS if name not in known]
    if missing:
        known.update({name: secrets.token_urlsafe(24) for name in missing})  # url-safe: fits database URLs as is
        _write_private(path, json.dumps(known, indent=2))
    return known


def _load_state(team: Team) -> Dict[str, Dict]:
    return json.loads(team.state_file.read_text()) if team.state_file.is_file() else {}


def _save_state(team: Team, state: Dict[str, Dict]) -> None:
    _write_private(team.state_file, json.dumps(state, indent=2))


def _remember(team: Team, service: str, pid: int) -> None:
    state = _load_state(team)
    saved = SavedProcess.of(pid)
    state[service] = {"pid": saved.pid, "create_time": saved.create_time, "port": team.port(service)}
    _save_state(team, state)


PROGRAMS = {"mariadb": "mariadbd", "postgresql": "postgres", "azurite": "azurite-blob",
            "zenml": "zenml.zen_server.zen_server_api", "mlflow": "mlflow"}


def running(team: Team, service: str) -> Optional[psutil.Process]:
    """The process `up` started for `service`, if it is still that process."""
    saved = _load_state(team).get(service)
    if not saved:
        return None
    return SavedProcess(pid=saved["pid"], create_time=saved["create_time"]).find(program=PROGRAMS[service])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(what: str, ready: Callable[[], bool], process: Optional[subprocess.Popen], log: Path,
          timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            raise TeamStackError(f"{what} exited with code {process.returncode} while starting; see {log}")
        time.sleep(0.2)
    raise TeamStackError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def _spawn(team: Team, service: str, command: List[str], env: Dict[str, str], user: Optional[str] = None,
           cwd: Optional[Path] = None) -> subprocess.Popen:
    """Start `command` in its own session with its output in the service's log."""
    _private_dir(team.log(service).parent)
    if user:
        command = ["runuser", "-u", user, "--", *command]
    with team.log(service).open("ab") as log:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd)


def _base_env() -> Dict[str, str]:
    """The caller's environment without the client settings of ZenML and MLflow (a server is not a client)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZENML_", "MLFLOW_TRACKING", "MLFLOW_AUTH", "PGPASSWORD", "AZURE_STORAGE"))}
    env.update({"ZENML_ANALYTICS_OPT_IN": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return env


def _executable(name: str, *fallbacks: str) -> str:
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise TeamStackError(f"{name} is not installed: run `make system-deps` (installs MariaDB and PostgreSQL)")


# ---------------------------------------------------------------------------------------------------------------
# MariaDB: the ZenML server's database


def _start_mariadb(team: Team, keys: Dict[str, str]) -> str:
    import pymysql

    folder, data = team.folder("mariadb"), team.folder("mariadb") / "data"
    socket_path = folder / "mariadb.sock"
    first_start = not (data / "mysql").is_dir()
    user = pwd.getpwuid(os.getuid()).pw_name
    if first_start:
        _private_dir(folder)
        result = subprocess.run(
            [_executable("mariadb-install-db", "/usr/bin/mariadb-install-db"), "--no-defaults", f"--user={user}",
             f"--datadir={data}", "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True)
        if result.returncode:
            team.log("mariadb").parent.mkdir(parents=True, exist_ok=True)
            team.log("mariadb").write_text(result.stdout + result.stderr)
            raise TeamStackError(f"mariadb-install-db failed for {data}; see {team.log('mariadb')}")
    process = _spawn(team, "mariadb", [
        _executable("mariadbd", "/usr/sbin/mariadbd"), "--no-defaults", f"--user={user}", f"--datadir={data}",
        f"--socket={socket_path}", f"--port={team.port('mariadb')}", f"--bind-address={LOOPBACK}",
        f"--pid-file={folder / 'mariadb.pid'}", "--skip-name-resolve", "--character-set-server=utf8mb4"], _base_env())
    _wait("MariaDB", lambda: socket_path.exists() and _port_answers(team.port("mariadb")), process,
          team.log("mariadb"))
    _remember(team, "mariadb", process.pid)
    configured = folder / "configured"
    if not configured.exists():  # root gets its password and ZenML its database and account
        connection = pymysql.connect(unix_socket=str(socket_path), user="root", password="")
        with connection, connection.cursor() as cursor:
            for statement in (
                "CREATE DATABASE IF NOT EXISTS zenml CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                f"CREATE USER IF NOT EXISTS 'zenml'@'{LOOPBACK}' IDENTIFIED BY '{keys['zenml_database']}'",
                f"GRANT ALL PRIVILEGES ON zenml.* TO 'zenml'@'{LOOPBACK}'",
                f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{keys['mariadb_root']}'",
                "FLUSH PRIVILEGES",
            ):
                cursor.execute(statement)
        configured.touch()
    return f"MariaDB {LOOPBACK}:{team.port('mariadb')} (data in {data})"


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL: MLflow's database


def _postgres_user() -> Optional[str]:
    """PostgreSQL refuses to run as root: root runs it as the `postgres` account."""
    return "postgres" if os.geteuid() == 0 else None


def _pg_command(team: Team, *args: str) -> subprocess.CompletedProcess:
    user = _postgres_user()
    # Debian keeps PostgreSQL's programs in /usr/lib/postgresql/<version>/bin, off PATH.
    command = [_executable(args[0], *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{args[0]}"))[-1:]), *args[1:]]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, env=_base_env(), cwd="/")


def _postmaster_pid(data: Path) -> Optional[int]:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError, PermissionError):
        return None


def _start_postgresql(team: Team, keys: Dict[str, str]) -> str:
    import psycopg2

    folder, data = team.folder("postgresql"), team.folder("postgresql") / "data"
    user = _postgres_user()
    first_start = not (data / "PG_VERSION").is_file()
    if user:  # the server's account owns its folder (data, socket, log) and must be able to reach it
        for parent in team.home.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise TeamStackError(
                    f"PostgreSQL runs as the {user!r} account, which cannot enter {parent}: set HEARTML_TEAM_HOME "
                    "to a folder it can reach (e.g. /var/lib/heartml/team)")
        team.home.chmod(0o711)  # enter, not list; everything else in it stays 0700
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        shutil.chown(folder, user)
    else:
        _private_dir(folder)
    if first_start:
        password_file = folder / "superuser-password"
        _write_private(password_file, keys["postgres_superuser"] + "\n")
        if user:
            shutil.chown(password_file, user)
        result = _pg_command(team, "initdb", "-D", str(data), "-U", "postgres", "--auth-local=peer",
                             "--auth-host=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8")
        password_file.unlink()
        if result.returncode:
            team.log("postgresql").write_text(result.stdout + result.stderr)
            raise TeamStackError(f"initdb failed for {data}; see {team.log('postgresql')}")
    result = _pg_command(team, "pg_ctl", "-D", str(data), "-l", str(team.log("postgresql")), "-w", "-t", "60",
                         "-o", f"-p {team.port('postgresql')} -k {folder} -c listen_addresses={LOOPBACK}", "start")
    if result.returncode:
        raise TeamStackError(f"PostgreSQL did not start ({result.stderr.strip() or result.stdout.strip()}); "
                             f"see {team.log('postgresql')}")
    pid = _postmaster_pid(data)
    if pid is None:
        raise TeamStackError(f"PostgreSQL started without a postmaster.pid in {data}; see {team.log('postgresql')}")
    _remember(team, "postgresql", pid)
    connection = psycopg2.connect(host=LOOPBACK, port=team.port("postgresql"), user="postgres",
                                  password=keys["postgres_superuser"], dbname="postgres")
    connection.autocommit = True  # CREATE DATABASE runs outside a transaction
    try:
        with connection.cursor() as cursor:  # idempotent: a start interrupted before this finishes it next time
            # MLflow's tracking and auth databases; Optuna's shared tuning studies (tuning.storage).
            for role, databases in (("mlflow", ("mlflow", "mlflow_auth")), ("optuna", ("optuna",))):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{keys[f'{role}_database']}'")
                for database in databases:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        cursor.execute(f"CREATE DATABASE {database} OWNER {role}")
    finally:
        connection.close()
    return f"PostgreSQL {LOOPBACK}:{team.port('postgresql')} (data in {data})"


def _stop_postgresql(team: Team) -> Optional[int]:
    process = running(team, "postgresql")
    if process is None:
        return None
    result = _pg_command(team, "pg_ctl", "-D", str(team.folder("postgresql") / "data"), "-m", "fast", "-w", "stop")
    if result.returncode:  # pg_ctl could not: SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients)
        process.send_signal(signal.SIGINT)
        if psutil.wait_procs([process], timeout=30)[1]:
            process.kill()
    return process.pid


# ---------------------------------------------------------------------------------------------------------------
# Azurite, the ZenML server, the MLflow server


def _start_azurite(team: Team, _keys: Dict[str, str]) -> str:
    _private_dir(team.folder("azurite"))  # the artifacts hold patient records
    pid = azurite_service.start(team.azurite)
    _remember(team, "azurite", pid)
    for container in (team.servers.zenml_artifacts_container, team.servers.mlflow_artifacts_container):
        azurite_service.ensure_container(team.azurite.connection_string, container)
    return f"Azurite {team.azurite.blob_endpoint} (data in {team.azurite.location})"


def zenml_server_env(team: Team, keys: Dict[str, str]) -> Dict[str, str]:
    env = _base_env()
    env.update({
        "ZENML_CONFIG_PATH": str(team.folder("zenml") / "config"),
        "ZENML_STORE_URL": f"mysql://zenml:{keys['zenml_database']}@{LOOPBACK}:{team.port('mariadb')}/zenml",
        "ZENML_SERVER": "true",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",  # creates the admin account below on a new database
        "ZENML_DEFAULT_USER_NAME": "admin",
        "ZENML_DEFAULT_USER_PASSWORD": keys["admin_password"],
        # Fixed, so tokens survive a restart; secrets are encrypted in the database.
        "ZENML_SERVER_JWT_SECRET_KEY": keys["zenml_jwt_key"],
        "ZENML_SECRETS_STORE_TYPE": "sql",
        "ZENML_SECRETS_STORE_ENCRYPTION_KEY": keys["zenml_encryption_key"],
    })
    return env


def _start_zenml(team: Team, keys: Dict[str, str]) -> str:
    _private_dir(team.folder("zenml"))
    process = _spawn(team, "zenml", [
        sys.executable, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app", "--host", LOOPBACK,
        "--port", str(team.port("zenml")), "--log-level", "warning"], zenml_server_env(team, keys),
        cwd=team.folder("zenml"))
    _wait("the ZenML server", lambda: http_ok(f"{team.zenml_url}/health"), process, team.log("zenml"))
    _remember(team, "zenml", process.pid)
    return f"ZenML server {team.zenml_url} (database zenml on MariaDB)"


def _start_mlflow(team: Team, keys: Dict[str, str]) -> str:
    folder = _private_dir(team.folder("mlflow"))
    database = f"postgresql://mlflow@{LOOPBACK}:{team.port('postgresql')}"
    config = folder / "basic_auth.ini"  # no credential in it: PostgreSQL's password comes from PGPASSWORD
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = {database}/mlflow_auth\nadmin_username = admin\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                      "grant_default_workspace_access = false\n"
                      # Checks a login's PBKDF2 hash once a minute, not on every request (MLflow: ~3x throughput).
                      "auth_cache_ttl_seconds = 60\n")
    env = _base_env()
    env.update({
        "PGPASSWORD": keys["mlflow_database"],
        "MLFLOW_BACKEND_STORE_URI": f"{database}/mlflow",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": keys["admin_password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": keys["mlflow_flask_key"],
        "AZURE_STORAGE_CONNECTION_STRING": team.azurite.connection_string,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job workers: nothing here uses them
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn
    })
    artifacts = (f"wasbs://{team.servers.mlflow_artifacts_container}@{azurite_service.ACCOUNT_NAME}"
                 ".blob.core.windows.net/")
    process = _spawn(team, "mlflow", [
        str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth", "--host", LOOPBACK,
        "--port", str(team.port("mlflow")), "--artifacts-destination", artifacts, "--serve-artifacts",
        "--workers", str(team.servers.mlflow_workers)], env, cwd=folder)
    _wait("the MLflow server", lambda: http_ok(f"{team.mlflow_url}/health"), process, team.log("mlflow"))
    _remember(team, "mlflow", process.pid)
    return f"MLflow server {team.mlflow_url} (PostgreSQL databases mlflow + mlflow_auth, artifacts in {artifacts})"


STARTERS = {"mariadb": _start_mariadb, "postgresql": _start_postgresql, "azurite": _start_azurite,
            "zenml": _start_zenml, "mlflow": _start_mlflow}


# ---------------------------------------------------------------------------------------------------------------
# Accounts


def _zenml_admin_session(team: Team, keys: Dict[str, str]) -> requests.Session:
    session = requests.Session()
    try:
        response = session.post(f"{team.zenml_url}/api/v1/login",
                                data={"username": "admin", "password": keys["admin_password"]}, timeout=30)
    except requests.RequestException as error:
        raise TeamStackError(f"ZenML server {team.zenml_url} does not answer ({type(error).__name__}): "
                             "start it with `python run.py stack up team`") from error
    if response.status_code != 200:
        raise TeamStackError(f"ZenML server {team.zenml_url}: admin login refused ({response.status_code})")
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session


def _zenml_api_key(team: Team, session: requests.Session, account: str) -> str:
    """A new API key for the service account `account` (created if missing)."""
    base = f"{team.zenml_url}/api/v1/service_accounts"
    found = session.get(f"{base}/{account}", timeout=30)
    if found.status_code == 404:
        found = session.post(base, json={"name": account, "description": f"team stack: {account}",
                                         "active": True}, timeout=30)
    found.raise_for_status()
    key = session.post(f"{base}/{found.json()['id']}/api_keys",
                       json={"name": f"team-{int(time.time() * 1000)}"}, timeout=30)
    key.raise_for_status()
    return key.json()["body"]["key"]


def _mlflow_admin(team: Team, keys: Dict[str, str], method: str, path: str, **body) -> requests.Response:
    try:
        return requests.request(method, f"{team.mlflow_url}{path}", auth=("admin", keys["admin_password"]),
                                json=body or None, timeout=30)
    except requests.RequestException as error:
        raise TeamStackError(f"MLflow server {team.mlflow_url} does not answer ({type(error).__name__}): "
                             "start it with `python run.py stack up team`") from error


def _ensure_mlflow_accounts(team: Team, keys: Dict[str, str]) -> None:
    for account in ("trainer", "reader"):
        response = _mlflow_admin(team, keys, "POST", "/api/2.0/mlflow/users/create", username=account,
                                 password=keys[f"{account}_password"])
        if response.status_code not in (200, 400) or (response.status_code == 400
                                                      and "RESOURCE_ALREADY_EXISTS" not in response.text):
            raise TeamStackError(f"MLflow server {team.mlflow_url}: creating user {account!r} failed "
                                 f"({response.status_code})")
    roles = _mlflow_admin(team, keys, "GET", "/api/3.0/mlflow/roles/list?workspace=default").json().get("roles", [])
    role = next((r for r in roles if r["name"] == TRAINERS_ROLE), None)
    if role is None:
        role = _mlflow_admin(team, keys, "POST", "/api/3.0/mlflow/roles/create", workspace="default",
                             name=TRAINERS_ROLE, description="train, register and promote models").json()["role"]
        for resource_type in ("experiment", "registered_model"):
            _mlflow_admin(team, keys, "POST", "/api/3.0/mlflow/roles/permissions/add", role_id=role["id"],
                          resource_type=resource_type, resource_pattern="*", permission="MANAGE").raise_for_status()
        _mlflow_admin(team, keys, "POST", "/api/3.0/mlflow/roles/assign", username="trainer",
                      role_id=role["id"]).raise_for_status()


def ensure_accounts(team: Team) -> List[str]:
    """Both servers' accounts, and `<home>/accounts/<account>.env` for the clients (written once)."""
    keys = server_secrets(team)
    _ensure_mlflow_accounts(team, keys)
    session = None
    written = []
    for account in ACCOUNTS:
        path = team.account_file(account)
        if path.is_file():
            continue
        if account == "admin":
            login = {"ZENML_STORE_USERNAME": "admin", "ZENML_STORE_PASSWORD": keys["admin_password"]}
        else:
            session = session or _zenml_admin_session(team, keys)
            login = {"ZENML_STORE_API_KEY": _zenml_api_key(team, session, account)}
        values = {"ZENML_STORE_URL": team.zenml_url, **login, "MLFLOW_TRACKING_URI": team.mlflow_url,
                  "MLFLOW_TRACKING_USERNAME": account, "MLFLOW_TRACKING_PASSWORD": keys[f"{account}_password"],
                  "HEARTML_TEAM_BLOB_CONNECTION_STRING": team.azurite.connection_string,
                  "HEARTML_TEAM_HOME": str(team.home)}
        if account in TUNERS:
            values["HEARTML_TUNING_STORAGE"] = team.tuning_storage(keys)
        _write_private(path, f"# The {account!r} account of the team stack: `set -a; . {path}; set +a`\n"
                       + "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
        written.append(account)
    return written


def account_env(team: Team, account: str) -> Dict[str, str]:
    """The client settings in `<home>/accounts/<account>.env`."""
    path = team.account_file(account)
    if not path.is_file():
        raise TeamStackError(f"{path}: no such account file; start the team stack with `python run.py stack up team`")
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(shlex.split(line)[0].split("=", 1) for line in lines)


# ---------------------------------------------------------------------------------------------------------------
# Up, down, status


def status(team: Team) -> Dict[str, Optional[int]]:
    """The saved process id of each service that is running, else None."""
    return {service: (process.pid if (process := running(team, service)) else None) for service in SERVICES}


def up(team: Team, only: Optional[Iterable[str]] = None, echo: Callable[[str], None] = lambda line: None) -> None:
    """Start what is not running (all services, or `only` those), then make sure the accounts exist."""
    wanted = [s for s in SERVICES if only is None or s in set(only)]
    _private_dir(team.home)
    if _postgres_user():
        team.home.chmod(0o711)
    keys = server_secrets(team)
    for service in wanted:
        process = running(team, service)
        if process is not None:
            echo(f"{service}: running (pid {process.pid})")
            continue
        if _port_answers(team.port(service)):
            raise TeamStackError(f"{LOOPBACK}:{team.port(service)} is in use by another program, so {service} "
                                 f"cannot start there: stop it or choose another port in configs/stacks/team.yaml")
        echo(f"{service}: started, {STARTERS[service](team, keys)}")
    if only is None or {"zenml", "mlflow"} & set(wanted):
        for account in ensure_accounts(team):
            echo(f"account {account}: settings in {team.account_file(account)}")


# The servers first (they hold the stores' connections), then the stores; the services of a group stop together.
_STOP_GROUPS = (("mlflow", "zenml"), ("azurite", "postgresql", "mariadb"))


def _stop(team: Team, service: str) -> Optional[int]:
    if service == "postgresql":
        return _stop_postgresql(team)
    process = running(team, service)
    if process is not None:  # the two servers keep nothing in memory: 10 s to finish requests, then SIGKILL
        stop_process(process, timeout=10 if service in ("zenml", "mlflow") else 30, with_children=True)
    return process.pid if process else None


def _timed_stop(team: Team, service: str) -> Tuple[Optional[int], float]:
    started = time.monotonic()
    return _stop(team, service), time.monotonic() - started


def down(team: Team, only: Optional[Iterable[str]] = None, echo: Callable[[str], None] = lambda line: None) -> None:
    """Stop the services `up` started (all, or `only` those), by their saved process ids: the two servers, then the
    stores, each group at once; one line per service with how long its stop took."""
    state = _load_state(team)
    wanted = set(SERVICES if only is None else only)
    for group in _STOP_GROUPS:
        services = [service for service in group if service in wanted]
        if not services:
            continue
        with ThreadPoolExecutor(len(services)) as pool:
            stops = {service: pool.submit(_timed_stop, team, service) for service in services}
        for service in services:
            pid, seconds = stops[service].result()
            state.pop(service, None)
            echo(f"{service}: stopped (pid {pid}, {seconds:.1f} s)" if pid else f"{service}: was not running")
    _save_state(team, state)


def client_problems(store_type: str, tracking_uri: Optional[str], home: Path) -> List[str]:
    """What keeps this client from running on the team stack: not logged in to a ZenML server, an MLflow server
    that does not answer. Starts nothing."""
    found = []
    example = home / "accounts" / "trainer.env"
    if store_type != "rest":
        found.append("the team stack runs through the team's ZenML server, and this client uses a local store: "
                     f"export an account's settings first (`set -a; . {example}; set +a`) or `zenml login URL`")
    if tracking_uri and tracking_uri.startswith("http") and not http_ok(f"{tracking_uri.rstrip('/')}/health"):
        found.append(f"the team's MLflow server at {tracking_uri} does not answer: start the team stack with "
                     "`python run.py stack up team`")
    return found

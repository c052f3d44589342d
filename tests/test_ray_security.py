"""A local Ray instance started by lstmgan admits no stranger: it listens on loopback only, and refuses a client
without its token (other users of the machine are strangers too)."""

import http.client
import ipaddress
import os
import stat
import subprocess
import sys
import time

import pytest

from lstmgan.ray_local import RAY_DEFAULT_TOKEN_FILE, connect_ray, require_ray_token

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")        # Ray brings its own copy (ray/thirdparty_files) where it is not installed

# One method of each gRPC service a Ray server may hold: Ray checks the token before the handler runs, so a call
# without it is answered UNAUTHENTICATED (a service the server does not hold answers UNIMPLEMENTED).
RAY_RPC_METHODS = ("/ray.rpc.NodeInfoGcsService/GetClusterId",               # GCS
                   "/ray.rpc.NodeManagerService/GetNodeStats",               # raylet: node manager
                   "/ray.rpc.ObjectManagerService/Pull",                     # raylet: object manager
                   "/ray.rpc.CoreWorkerService/NumPendingTasks",             # the driver and every worker
                   "/ray.rpc.ReporterService/ReportOCMetrics",               # dashboard agent (ray[default])
                   "/ray.rpc.events.EventAggregatorService/AddEvents",       # dashboard agent (ray[default])
                   "/ray.rpc.RayletDriver/ClusterInfo")                      # Ray Client server (`ray start`)

# A client that is not lstmgan's: Ray's own driver, without the token (auth off, another HOME). It keeps 127.0.0.1
# as it is (Ray would otherwise rewrite it to the routed address, where nothing listens) and gives up after two
# tries instead of twenty.
STRANGER = "import ray, sys; ray.init(address=sys.argv[1]); print('ADMITTED', ray.cluster_resources())"


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """The local instance, started the way `--engine ray` starts it, in a HOME of its own (where the token goes)."""
    patch = pytest.MonkeyPatch()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        patch.delenv(name, raising=False)                    # lstmgan's defaults, not the tester's
    patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    try:
        yield connect_ray(None)
    finally:
        ray.shutdown()
        patch.undo()


def ray_processes(session_dir: str) -> list[psutil.Process]:
    """This process (the driver listens too) and every process of the instance: its descendants, and any process
    whose command line names the instance's session directory."""
    me = psutil.Process()
    found = {p.pid: p for p in [me, *me.children(recursive=True)]}
    for p in psutil.process_iter(["cmdline"]):
        if any(session_dir in arg for arg in p.info["cmdline"] or ()):
            found.setdefault(p.pid, p)
    return list(found.values())


def listening_sockets(processes) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of `processes`."""
    sockets = []
    for p in processes:
        try:
            sockets += [(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            pass                                             # a worker that just exited
    return sockets


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def reachable_host(address: str) -> str:
    """Where a client on this machine reaches a socket bound to `address`."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_unspecified:
        return "127.0.0.1"                                   # all interfaces: loopback included
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def refusal_without_token(grpc, address: str, port: int) -> str | None:
    """How the server at `address`:`port` refuses a client that sends no token, or None if it does not."""
    host = reachable_host(address)
    with grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") as channel:
        for method in RAY_RPC_METHODS:
            try:
                channel.unary_unary(method)(b"", timeout=5)
                return None                                  # answered: admitted
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    return f"gRPC {method}: UNAUTHENTICATED"
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    break                                    # not a gRPC server (the runtime-env agent speaks HTTP)
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("POST", "/", body=b"")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return f"HTTP {status}" if status in (401, 403) else None


def serves_prometheus_metrics(address: str, port: int) -> bool:
    """Whether the server at `address`:`port` is a Prometheus exporter: read-only metrics, no way to run anything."""
    connection = http.client.HTTPConnection(reachable_host(address), port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        return response.status == 200 and b"# TYPE " in response.read(1 << 20)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@pytest.fixture(scope="module")
def listeners(local_ray) -> list[tuple[str, str, int]]:
    """Every listening TCP socket of the local instance, once a task has run (its workers listen too)."""
    @local_ray.remote
    def pid():
        return os.getpid()

    local_ray.get([pid.remote() for _ in range(2)], timeout=60)
    time.sleep(1)                                                     # and the agents have bound their ports
    session_dir = local_ray._private.worker.global_worker.node.get_session_dir_path()
    sockets = listening_sockets(ray_processes(session_dir))
    assert {"gcs_server", "raylet"} <= {name for name, _, _ in sockets}, sockets   # the enumeration found them
    return sockets


def test_a_token_others_can_read_is_kept_and_made_private(tmp_path, monkeypatch):
    # first in this file: it changes which token this process sends, before any instance of the module starts
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    token = RAY_DEFAULT_TOKEN_FILE.expanduser()
    token.parent.mkdir()
    token.write_text("a" * 64)
    token.chmod(0o644)                                                # as Ray's own ray.init writes it
    require_ray_token()
    assert token.read_text() == "a" * 64 and stat.S_IMODE(token.stat().st_mode) == 0o600


def test_the_local_instance_refuses_a_client_without_the_token(local_ray):
    @local_ray.remote
    def answer():
        return 42

    assert local_ray.get(answer.remote(), timeout=60) == 42           # lstmgan's own connection works

    address = local_ray.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
    env.update(RAY_AUTH_MODE="disabled", HOME=os.path.join(os.environ["HOME"], "stranger"),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_NUM_REDIS_GET_RETRIES="2")
    stranger = subprocess.run([sys.executable, "-c", STRANGER, address], capture_output=True, text=True, env=env,
                              timeout=120)
    output = stranger.stdout + stranger.stderr
    assert stranger.returncode != 0 and "ADMITTED" not in output, output[-2000:]
    assert "InvalidAuthToken" in output, output[-2000:]

    # the token Ray uses: lstmgan made it, where Ray looks for it (in the fixture's HOME), readable by its owner only
    token = RAY_DEFAULT_TOKEN_FILE.expanduser()
    assert len(token.read_text()) == 64 and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_every_socket_of_the_local_instance_listens_on_loopback(listeners):
    exposed = [s for s in listeners if not is_loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_every_socket_of_the_local_instance_wants_the_token(listeners):
    grpc = pytest.importorskip("grpc")
    admitting = [s for s in listeners if refusal_without_token(grpc, s[1], s[2]) is None]
    # Where ray[default] is installed, the autoscaler monitor and the dashboard head export Prometheus metrics
    # (ports 44217 and 44227) to anyone who reaches them; ray.init has no switch for either. Read-only, and on
    # loopback (the test above): allowed, and said in docs/distributed.md. Nothing else may answer without the token.
    admitting = [s for s in admitting if not serves_prometheus_metrics(s[1], s[2])]
    assert not admitting, f"answering a client without the token: {admitting}"

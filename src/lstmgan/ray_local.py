"""A Ray instance for a sweep that admits no stranger, or an existing cluster joined with its token.

Ray's defaults are for a trusted cluster: its servers listen on every interface and, before Ray 2.59,
take any client. A sweep on one machine needs neither; `connect_ray` starts a local instance whose
servers listen on loopback only and refuse a client without the instance's token (docs/distributed.md).
"""

from __future__ import annotations

import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

RAY_HINT = "pip install 'lstmgan[ray]'"
# Ray's token authentication (since Ray 2.52): RAY_AUTH_MODE=token, and the token from RAY_AUTH_TOKEN, else the file
# named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (the file `ray.init` creates for a local instance)
RAY_AUTH_MODE = "RAY_AUTH_MODE"
RAY_TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
RAY_DEFAULT_TOKEN_FILE = Path("~") / ".ray" / "auth_token"
# Ray keeps a node IP of 127.0.0.1 (and then binds its servers to loopback) only while this is 0; see loopback_only_ray
RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def connect_ray(address: str | None):
    """The `ray` module, initialised: a local instance sized to this machine, or the cluster at `address`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")      # no usage reporting unless asked for
    if not address:
        os.environ.setdefault(RAY_AUTH_MODE, "token")          # before `import ray`, which reads it once
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {RAY_HINT}") from None
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--address must be auto or HOST:PORT (got {address!r})")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as error:
            raise UsageError(f"--address {address}: no Ray cluster answers there ({error.strerror or error})") \
                from None
    env = {"env_vars": {k: v for k, v in os.environ.items()
                        if k.startswith(("LSTMGAN_", "TORCH_EXTENSIONS_DIR", "XDG_CACHE_HOME"))}}
    try:
        if ray.is_initialized():
            ray.shutdown()
        if address:
            reload_ray_auth_settings()
            loopback = address.split(":")[0] in ("127.0.0.1", "localhost")   # else Ray picks the routed address
            ray.init(address=address, runtime_env=env, logging_level="ERROR", log_to_driver=False,
                     **({"_node_ip_address": "127.0.0.1"} if loopback else {}))
        else:
            start_local_ray(ray, env)
    except (ConnectionError, RuntimeError, ValueError, OSError, ray.exceptions.RayError) as error:
        # a refused token shows only in the cause (Ray retries, then says it could not connect)
        refused = any("InvalidAuthToken" in str(e) or "authentication token" in str(e).lower()
                      for e in (error, error.__cause__) if e)
        hint = ("; the cluster wants its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                "as on its nodes (docs/distributed.md)") if refused else ""
        raise UsageError(f"--engine ray: could not {'join ' + address if address else 'start Ray'} "
                         f"({' '.join(str(error).split())[:200]}){hint}") from None
    return ray


def start_local_ray(ray, runtime_env: dict) -> None:
    """A Ray instance on this machine that admits no stranger: its servers listen on loopback only, and every one
    of them refuses a client without the instance's token (other users of this machine are strangers too)."""
    require_ray_token()
    with loopback_only_ray():
        ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", runtime_env=runtime_env,
                 # nothing a sweep needs, and each would be one more server where ray[default] is installed:
                 # the dashboard (port 8265) and the metrics agent's Prometheus endpoint
                 include_dashboard=False, _system_config={"enable_metrics_collection": False},
                 logging_level="ERROR", log_to_driver=False)


def require_ray_token() -> None:
    """Token authentication on for the local instance (unless the user chose a mode), with a token Ray will find.

    Ray >= 2.59 turns it on by itself for `ray.init()`, earlier ones (2.52-2.58) only when asked. For a local
    instance `ray.init` creates the token file when it is missing, but readable by every user of the machine
    (umask 022): it is created here first, at the same place and in the same format, readable by its owner only,
    and one that others can read is made private (whoever reads it may run code in every instance using it).
    """
    if os.environ.setdefault(RAY_AUTH_MODE, "token").lower() == "token" \
            and not any(os.environ.get(name) for name in RAY_TOKEN_VARIABLES):
        token_file = RAY_DEFAULT_TOKEN_FILE.expanduser()
        token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_hex(32))         # as `ray get-auth-token --generate`: 256 random bits, hex
        except FileExistsError:                        # the user's (or an earlier instance's) token: keep it
            if token_file.stat().st_mode & 0o077:
                token_file.chmod(0o600)
    reload_ray_auth_settings()


def reload_ray_auth_settings() -> None:
    """Ray reads RAY_AUTH_MODE once per process, when it is imported (RayConfig), and caches the token it loaded:
    have it read both again, so that what the environment says now is what this process sends (Ray does the same
    when it turns token auth on by itself). Needed where Ray was used before in this process (tests, notebooks)."""
    from ray import _raylet

    _raylet.Config.initialize("")
    _raylet.AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def loopback_only_ray():
    """Keep the local instance's node IP at 127.0.0.1, which makes Ray bind its servers to loopback.

    On Linux `ray.init(_node_ip_address="127.0.0.1")` is not enough: Ray replaces a loopback node IP by the machine's
    routed address (`services.resolve_ip_for_localhost`), and then the GCS, the raylet (node manager and object
    manager) and every worker listen on all interfaces, the runtime-env agent on the routed address. It keeps
    127.0.0.1 only where it expects no cluster: with `ray_constants.ENABLE_RAY_CLUSTER` off
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when Ray is imported). Then every server binds to 127.0.0.1
    (measured with `ss -ltnp`, see docs/distributed.md). Off here, during `ray.init`, for this process (which
    imported Ray already) and for the processes it starts (they inherit the variable); restored afterwards.
    """
    from ray._private import ray_constants

    saved_switch, saved_variable = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(RAY_CLUSTER_SWITCH)
    ray_constants.ENABLE_RAY_CLUSTER, os.environ[RAY_CLUSTER_SWITCH] = False, "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        if saved_variable is None:
            os.environ.pop(RAY_CLUSTER_SWITCH, None)
        else:
            os.environ[RAY_CLUSTER_SWITCH] = saved_variable

"""Where uploads and artifacts live, from the environment: the local media folder, or an S3-compatible object store.

`SLIMFORGE_STORAGE=filesystem` (the default) keeps them under `var/media/`. `SLIMFORGE_STORAGE=s3` keeps them in
a bucket through django-storages, so workers on other machines need no shared disk:

- `SLIMFORGE_S3_BUCKET` (required), `SLIMFORGE_S3_ENDPOINT_URL` (an S3-compatible server such as MinIO or Ceph;
  unset for AWS), `SLIMFORGE_S3_REGION`, `SLIMFORGE_S3_PREFIX` (a folder of the bucket, so installs can share one);
- `SLIMFORGE_S3_ACCESS_KEY_ID` and `SLIMFORGE_S3_SECRET_ACCESS_KEY` together, or neither: then boto's own chain
  (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `~/.aws`, an instance role);
- `SLIMFORGE_S3_ADDRESSING_STYLE`: `path`, `virtual` or `auto`; `path` by default with an endpoint URL (what
  self-hosted servers answer), botocore's `auto` without.

Objects are private: no ACL is sent (they take the bucket's, private unless the bucket is made public), no signed
URL is ever made (users download through the owner-checked views, which stream the file), and a name is never
overwritten. A missing or contradictory setting stops the start with a message naming the variable.
"""
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from webapp.envconf import ImproperEnvironment, env_int

FILESYSTEM, S3 = "filesystem", "s3"
S3_VARIABLES = ("SLIMFORGE_S3_BUCKET", "SLIMFORGE_S3_ENDPOINT_URL", "SLIMFORGE_S3_REGION", "SLIMFORGE_S3_PREFIX",
                "SLIMFORGE_S3_ACCESS_KEY_ID", "SLIMFORGE_S3_SECRET_ACCESS_KEY", "SLIMFORGE_S3_ADDRESSING_STYLE")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rule for bucket names
_PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_REGION = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A stored file read in the web process (a download, a bundle) is spooled to a temporary file past this size, not
# held in memory (django-storages' default holds all of it).
SPOOL_IN_MEMORY_BYTES = 4 * 1024 * 1024
# The worker's cache of stored files is useful only when reading storage costs a download.
DEFAULT_WORKER_CACHE_MB = {FILESYSTEM: 0, S3: 10 * 1024}


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def storage_kind() -> str:
    kind = _env("SLIMFORGE_STORAGE") or FILESYSTEM
    if kind not in (FILESYSTEM, S3):
        raise ImproperEnvironment(f"SLIMFORGE_STORAGE must be {FILESYSTEM!r} or {S3!r}; got {kind!r}")
    return kind


def default_storage() -> dict:
    """STORAGES["default"]: the backend of uploads and artifacts and its options."""
    if storage_kind() == FILESYSTEM:
        stray = [name for name in S3_VARIABLES if _env(name)]
        if stray:
            raise ImproperEnvironment(f"{stray[0]} is set, but SLIMFORGE_STORAGE is {FILESYSTEM!r}: set "
                                      f"SLIMFORGE_STORAGE={S3} to keep files in the object store, or unset "
                                      f"{', '.join(stray)}.")
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options()}


def _s3_options() -> dict:
    bucket = _env("SLIMFORGE_S3_BUCKET")
    if not bucket:
        raise ImproperEnvironment(f"SLIMFORGE_S3_BUCKET is not set: SLIMFORGE_STORAGE={S3} needs the name of the "
                                  "bucket that keeps the files.")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ImproperEnvironment(f"SLIMFORGE_S3_BUCKET must be a bucket name (3 to 63 of a-z, 0-9, '.', '-'); "
                                  f"got {bucket!r}")
    endpoint = _endpoint()
    key_id, secret = _env("SLIMFORGE_S3_ACCESS_KEY_ID"), _env("SLIMFORGE_S3_SECRET_ACCESS_KEY")
    if bool(key_id) != bool(secret):
        given, missing = (("SLIMFORGE_S3_ACCESS_KEY_ID", "SLIMFORGE_S3_SECRET_ACCESS_KEY") if key_id
                          else ("SLIMFORGE_S3_SECRET_ACCESS_KEY", "SLIMFORGE_S3_ACCESS_KEY_ID"))
        raise ImproperEnvironment(f"{given} is set but {missing} is not: set both, or neither to let boto find "
                                  "credentials itself (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws, a role).")
    region = _env("SLIMFORGE_S3_REGION")
    if region and not _REGION.fullmatch(region):
        raise ImproperEnvironment(f"SLIMFORGE_S3_REGION must be a region name such as 'eu-west-1'; got {region!r}")
    prefix = _env("SLIMFORGE_S3_PREFIX").strip("/")
    if prefix and (not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/")):
        raise ImproperEnvironment(f"SLIMFORGE_S3_PREFIX must be a folder name such as 'slimforge/prod' (letters, "
                                  f"digits, '.', '_', '-', '/'); got {prefix!r}")
    style = _env("SLIMFORGE_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto")
    if style not in ("path", "virtual", "auto"):
        raise ImproperEnvironment(f"SLIMFORGE_S3_ADDRESSING_STYLE must be 'path', 'virtual' or 'auto'; got {style!r}")
    options = {
        "bucket_name": bucket, "location": prefix, "addressing_style": style, "signature_version": "s3v4",
        "file_overwrite": False,  # a name already taken gets another: one file never replaces another
        "default_acl": None,  # no ACL header: the bucket's own, private unless someone made the bucket public
        "querystring_auth": False,  # url() never signs: files leave only through the owner-checked views
        "max_memory_size": SPOOL_IN_MEMORY_BYTES,
    }
    if endpoint:
        options["endpoint_url"] = endpoint
    if region:
        options["region_name"] = region
    if key_id:
        options.update(access_key=key_id, secret_key=secret)
    return options


def _endpoint() -> str:
    endpoint = _env("SLIMFORGE_S3_ENDPOINT_URL").rstrip("/")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ImproperEnvironment("SLIMFORGE_S3_ENDPOINT_URL must be the object store's http(s) URL, such as "
                                      f"'https://minio.example.org:9000'; got {endpoint!r}")
    return endpoint


def worker_cache_dir(var_dir: Path) -> Path:
    """The worker's cache of stored files: SLIMFORGE_WORKER_CACHE_DIR, or var/worker-cache."""
    raw = _env("SLIMFORGE_WORKER_CACHE_DIR")
    if raw and not Path(raw).is_absolute():
        raise ImproperEnvironment(f"SLIMFORGE_WORKER_CACHE_DIR must be an absolute path; got {raw!r}")
    return Path(raw).resolve() if raw else var_dir / "worker-cache"


def worker_cache_bytes() -> int:
    """How much the worker's cache may hold (SLIMFORGE_WORKER_CACHE_MB; 0 turns it off): by default nothing with the
    local media folder, which is as near as a cache would be, and 10 GiB with an object store."""
    default = DEFAULT_WORKER_CACHE_MB[storage_kind()]
    return env_int("SLIMFORGE_WORKER_CACHE_MB", default, low=0, high=64 * 1024 * 1024) * 1024 * 1024

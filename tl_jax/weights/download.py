"""Weight files fetched on first use: verified before trusted, atomic, offline- and mirror-aware.

URL files (torchvision, Keras) stream through pooch's HTTP downloader (requests,
progress bar) into a temporary ``<name>.part.<pid>`` next to their destination,
are checked against the hash their source publishes and only then renamed into
place: a cut transfer or a wrong file never carries the trusted name. Hugging
Face hub files go through ``huggingface_hub`` into its own cache (so
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_CACHE`` work as
for timm), and their bytes are checked against the hub's SHA-256 of the LFS
object, which the cache also uses as the blob's name. ``hf://owner/name[@revision]``
names a tl_jax run pushed to the hub (``tl_jax.evaluate.hub``): ``fetch_hf`` gets one
of its files.

Environment:
  TL_JAX_OFFLINE=1: never download; a missing file raises the error that names
    its URL and where to put it.
  TL_JAX_WEIGHTS_MIRROR=URL: fetch ``<URL>/<file name>`` instead of the source
    (a flat directory served over HTTP, for clusters without internet access);
    the same checksum applies.
"""

import contextlib
import hashlib
import logging
import os
import re

import filelock

log = logging.getLogger(__name__)

OFFLINE = "TL_JAX_OFFLINE"
HF_SCHEME = "hf://"
MIRROR = "TL_JAX_WEIGHTS_MIRROR"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Why a server refused: what to do about it.
_ADVICE = {
    401: "the server wants credentials",
    403: "access denied (a rate limit, a region block or a moved file); retry later, "
         f"or serve the file yourself with ${MIRROR}",
    404: "not found: the source moved the file, or the mirror does not hold it",
    429: f"rate limited: retry later, or serve the file yourself with ${MIRROR}",
}


class DownloadError(FileNotFoundError):
  """A weight file is missing and could not be fetched; the message says why and what to do."""


class ChecksumError(DownloadError):
  """Downloaded bytes do not match the hash the source publishes."""


class HubFileMissing(DownloadError):
  """The hub repo exists but holds no such file (HTTP 404 for the file, not the repo)."""


def offline() -> bool:
  """Whether ``$TL_JAX_OFFLINE`` forbids downloads."""
  return os.environ.get(OFFLINE, "").lower() not in ("", "0", "false", "no")


def file_checksum(path: str, checksum: str) -> str:
  """The file's digest in the algorithm of ``checksum`` ("md5:..." or "sha256:...")."""
  return file_hash(path, checksum.partition(":")[0])


def file_hash(path: str, alg: str = "sha256") -> str:
  """The hex digest of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.new(alg)
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def checksum_matches(path: str, checksum: str) -> bool:
  """Whether ``path`` has ``checksum``, "alg:hex"; a hex prefix (torchvision's 8 digits) counts."""
  alg, _, want = checksum.partition(":")
  if alg not in ("md5", "sha256") or len(want) < 8:
    raise ValueError(f"Bad checksum {checksum!r}: expected 'md5:<hex>' or 'sha256:<hex>' (>= 8 digits).")
  return file_checksum(path, checksum).startswith(want.lower())


def _remove(path: str) -> None:
  with contextlib.suppress(FileNotFoundError):
    os.remove(path)


def _http_get(url: str, dest: str, hint: str) -> None:
  """Streams ``url`` into ``dest`` with a progress bar; errors say what happened and what to do."""
  import pooch  # imported at use: only downloads need it (a GPU image may lack it)
  import requests  # pooch's own HTTP client

  try:
    pooch.HTTPDownloader(progressbar=True, timeout=60)(url, dest, None)
  except requests.HTTPError as e:
    code = e.response.status_code
    raise DownloadError(f"Downloading {url} failed: HTTP {code} {e.response.reason}: "
                        f"{_ADVICE.get(code, 'the server refused')}. {hint}") from None
  except requests.RequestException as e:  # no route, DNS, timeout, connection cut mid-body
    raise DownloadError(f"Downloading {url} failed ({type(e).__name__}: {e}); nothing was saved. "
                        f"Offline? {hint}") from None


def fetch_url(url: str, dest: str, checksum: str, hint: str) -> str:
  """``dest``, downloaded from ``url`` (or ``$TL_JAX_WEIGHTS_MIRROR``) unless a verified copy is there.

  Args:
    url: the source's URL of the file.
    dest: where the file lives in the weights directory.
    checksum: "alg:hex" the source publishes; "" (none published) checks only
      that the transfer was complete.
    hint: how to get the file by hand; ends every error message.

  Returns:
    ``dest``, whose contents match ``checksum``.

  Raises:
    DownloadError: offline, refused, cut off, or (``ChecksumError``) wrong bytes.
  """
  good = lambda: os.path.exists(dest) and (not checksum or checksum_matches(dest, checksum))
  if good():
    return dest
  if offline():
    raise DownloadError(f"{hint} (${OFFLINE} is set: not downloading.)")
  os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
  # One download per file, also across processes sharing a filesystem (multi-host runs).
  with filelock.FileLock(dest + ".lock"):
    if good():  # another process fetched it meanwhile
      return dest
    if os.path.exists(dest):
      log.warning("%s fails its %s check (truncated, corrupted or replaced upstream): not using it, "
                  "downloading it again.", dest, checksum.partition(":")[0])
      _remove(dest)
    mirror = os.environ.get(MIRROR, "").rstrip("/")
    src = f"{mirror}/{os.path.basename(dest)}" if mirror else url
    if not checksum:
      log.warning("No published checksum for %s: only a complete transfer is checked.", src)
    tmp = f"{dest}.part.{os.getpid()}"  # never the name a lookup trusts
    try:
      log.info("Downloading %s to %s", src, dest)
      _http_get(src, tmp, hint)
      if checksum and not checksum_matches(tmp, checksum):
        raise ChecksumError(
            f"{src} downloaded, but its {checksum.partition(':')[0]} is {file_checksum(tmp, checksum)}, "
            f"not the published {checksum.partition(':')[2]}: the file was replaced upstream"
            f"{' or the mirror holds another file' if mirror else ''}. Nothing was saved. {hint}")
      os.replace(tmp, dest)
    finally:
      _remove(tmp)
  return dest


def _hub_sha256(path: str) -> str | None:
  # The cache names a blob by the hub's ETag, which for LFS files is the SHA-256.
  name = os.path.basename(os.path.realpath(path))
  return name if _SHA256.fullmatch(name) else None


def verify_hub_file(path: str, expected: str | None = None) -> bool:
  """Whether a hub file's bytes match the hub's SHA-256 (``expected``, default its blob name)."""
  expected = expected or _hub_sha256(path)
  if expected is None:
    raise ChecksumError(f"Cannot verify {path}: no SHA-256 known for it (not an LFS file in the hub cache).")
  return file_hash(path) == expected


def parse_hf(uri: str) -> tuple[str, str | None]:
  """``hf://owner/name[@revision]`` -> ``(repo_id, revision or None)``."""
  repo, _, revision = uri.removeprefix(HF_SCHEME).partition("@")
  if not uri.startswith(HF_SCHEME) or repo.count("/") != 1 or not all(repo.split("/")):
    raise ValueError(f"{uri!r}: expected {HF_SCHEME}owner/name or {HF_SCHEME}owner/name@revision.")
  return repo, revision or None


def fetch_hf(uri: str, filename: str) -> str:
  """File ``filename`` of the repo ``uri`` names (``parse_hf``), verified (``fetch_hub``)."""
  repo, revision = parse_hf(uri)
  return fetch_hub(repo, filename, f"({uri}: a tl_jax run pushed with tl_jax.evaluate.hub.push)",
                   revision=revision)


def fetch_hub(repo_id: str, filename: str, hint: str, *, revision: str | None = None, verify: bool = True) -> str:
  """A hub file in the huggingface_hub cache, downloaded if missing and verified by its SHA-256.

  A cached copy that fails the check is deleted and downloaded again. ``verify=False`` for small
  files the hub keeps in git rather than LFS (no SHA-256 published: its download checks the length).
  """
  import huggingface_hub
  from huggingface_hub import errors

  def download(force: bool = False) -> str:
    try:
      return huggingface_hub.hf_hub_download(
          repo_id, filename, revision=revision, force_download=force, local_files_only=offline(),
          endpoint=os.environ.get("HF_ENDPOINT") or None)  # read now, not when the hub was imported
    except errors.LocalEntryNotFoundError as e:  # offline, or the hub unreachable
      raise DownloadError(f"{hint} (not in the hub cache and not downloadable: {e})") from None
    except errors.RemoteEntryNotFoundError as e:
      raise HubFileMissing(f"{repo_id} has no {filename}. {hint}") from e
    except (errors.GatedRepoError, errors.RepositoryNotFoundError, errors.HfHubHTTPError) as e:
      code = getattr(e.response, "status_code", None)
      raise DownloadError(f"The hub refused {repo_id}/{filename}: HTTP {code}: "
                          f"{_ADVICE.get(code, 'see the message below')}. Set HF_TOKEN for higher rate "
                          f"limits, or HF_ENDPOINT for a hub mirror. {hint}\n{e}") from None

  path = download()
  if not verify or verify_hub_file(path):
    return path
  log.warning("%s (%s/%s) fails its SHA-256 check: not using it, downloading it again.",
              path, repo_id, filename)
  blob = os.path.realpath(path)
  _remove(path), _remove(blob)
  path = download(force=True)
  expected = _hub_sha256(path)
  if not verify_hub_file(path, expected):
    got = file_hash(path)
    _remove(os.path.realpath(path)), _remove(path)
    raise ChecksumError(f"{repo_id}/{filename} downloaded, but its sha256 is {got}, not the hub's "
                        f"{expected}: the hub (or HF_ENDPOINT's mirror) served other bytes. "
                        f"Nothing was kept. {hint}")
  return path

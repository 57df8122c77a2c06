"""A run pushed to the Hugging Face hub and pulled back (``tl_jax.evaluate.hub``), against a fake hub.

The hub is the loopback server of conftest.py (``hub`` fixture: ``HF_ENDPOINT``) answering with
``FakeHub``: just enough of the hub's HTTP API for huggingface_hub's own ``create_repo``,
``create_commit`` (validate-yaml, preupload, the LFS batch API and its basic PUT transfer, the
ndjson commit) and downloads (``resolve``). huggingface_hub's Xet upload path is turned off
(``HF_HUB_DISABLE_XET``), so LFS files travel by the git-LFS protocol that the fake implements.
Commits are atomic as on the hub: a failed commit changes nothing.
"""

import base64
import hashlib
import json
import os
import re

import numpy as np
import pytest

from tests import tiny
from tl_jax import weights
from tl_jax.evaluate import evaluation, predict
from tl_jax.evaluate import hub as hub_lib
from tl_jax.weights import download, formats

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

LFS = (".safetensors", ".png")  # the hub's default .gitattributes sends these to LFS


def _read(path, mode="r"):
  with open(path, mode) as f:
    return f.read()


def _json(status, obj, **headers):
  return status, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers}


class FakeHub:
  """Repos ``{repo_id: [commit sha, ...]}``, snapshots ``{sha: {path: (bytes, lfs)}}``, LFS objects."""

  def __init__(self, url: str):
    self.url, self.repos, self.snapshots, self.lfs = url, {}, {}, {}
    self.fail_commit = False  # the next commits answer 500, as a hub outage mid-push

  def files(self, repo: str) -> dict[str, bytes]:
    commits = self.repos.get(repo) or [None]
    return {p: data for p, (data, _) in self.snapshots.get(commits[-1], {}).items()}

  def __call__(self, method, path, headers, body):
    path = path.split("?")[0]
    if (method, path) == ("POST", "/api/repos/create"):
      req = json.loads(body)
      repo = f"{req['organization']}/{req['name']}"
      if repo in self.repos:
        return _json(409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"})
      self.repos[repo] = []
      return _json(200, {"url": f"{self.url}/{repo}"})
    if (method, path) == ("POST", "/api/validate-yaml"):
      return _json(200, {"errors": [], "warnings": []})
    if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/main", path):
      if m[1] not in self.repos:
        return _json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
      return (self._preupload if m[2] == "preupload" else self._commit)(m[1], body)
    if m := re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
      objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                  "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}}
                 for o in json.loads(body)["objects"]]
      return _json(200, {"transfer": "basic", "objects": objects})
    if method == "PUT" and (m := re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)):
      if hashlib.sha256(body).hexdigest() != m[1]:
        return _json(400, {"error": "sha256 mismatch"})
      self.lfs[m[1]] = body
      return 200, b"", {}
    if method in ("GET", "HEAD") and (m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)):
      return self._resolve(*m.groups())
    return None

  def _preupload(self, repo, body):
    files = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS) else "regular",
              "shouldIgnore": False, "oid": None} for f in json.loads(body)["files"]]
    return _json(200, {"files": files})

  def _commit(self, repo, body):
    if self.fail_commit:
      return _json(500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"})
    snapshot = dict(self.snapshots.get((self.repos[repo] or [None])[-1], {}))
    for line in body.decode().splitlines():
      item = json.loads(line)
      v = item["value"]
      if item["key"] == "file":
        snapshot[v["path"]] = (base64.b64decode(v["content"]), False)
      elif item["key"] == "lfsFile":
        if v["oid"] not in self.lfs:
          return _json(422, {"error": f"LFS object {v['oid']} was never uploaded"})
        snapshot[v["path"]] = (self.lfs[v["oid"]], True)
    sha = hashlib.sha1(repr(sorted((p, hashlib.sha256(d).hexdigest()) for p, (d, _) in snapshot.items())).encode()
                       + str(len(self.snapshots)).encode()).hexdigest()
    self.snapshots[sha] = snapshot
    self.repos[repo].append(sha)
    return _json(200, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

  def _resolve(self, repo, revision, filename):
    if repo not in self.repos:
      return _json(404, {"error": "Repository not found"}, **{"X-Error-Code": "RepoNotFound"})
    commits = self.repos[repo]
    sha = commits[-1] if revision == "main" and commits else revision
    if sha not in commits:
      return _json(404, {"error": "Invalid rev id"}, **{"X-Error-Code": "RevisionNotFound"})
    if filename not in self.snapshots[sha]:
      return _json(404, {"error": "Entry not found"}, **{"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
    data, lfs = self.snapshots[sha][filename]
    # LFS files are named by their SHA-256 (what tl_jax verifies), git files by their blob id.
    etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"'}
    if lfs:
      headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
    return 200, data, headers


@pytest.fixture
def fake_hub(hub, monkeypatch):
  from huggingface_hub import constants

  monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # LFS by git-LFS, which FakeHub speaks
  for var in (download.OFFLINE, "HF_HUB_OFFLINE"):
    monkeypatch.delenv(var, raising=False)
  hub.app = FakeHub(hub.url)
  hub.app.hits = hub.hits  # every request, in order
  return hub.app


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A finished tiny run (linear probe of a random Lite0, 16 px, 1 epoch): (workdir, npz path)."""
  from tl_jax.train import trainer

  tmp = tmp_path_factory.mktemp("hub_run")
  npz = tiny.write_npz(tmp / "digits.npz")
  trainer.train_and_evaluate(tiny.config(npz, **{"train.compilation_cache_dir": "", "train.num_epochs": 1}),
                             str(tmp / "run"))
  return str(tmp / "run"), npz


def test_pushed_run_pulls_back_and_predicts_as_the_run(tiny_run, fake_hub, monkeypatch):
  workdir, _ = tiny_run
  out = hub_lib.push(workdir, "me/tiny")
  run = evaluation.restore(workdir, "best")
  assert out["step"] == run.step and fake_hub.repos["me/tiny"] == [out["commit"]]  # one commit
  files = fake_hub.files("me/tiny")
  assert sorted(files) == ["README.md", "class_names.json", "config.json", "confusion_matrix.png",
                           "model.safetensors", "preprocessing.json"]
  assert json.loads(files["config.json"]) == json.loads(_read(os.path.join(workdir, "config.json")))
  assert json.loads(files["class_names.json"]) == run.class_names
  prep = json.loads(files["preprocessing.json"])
  assert prep["weights"]["mean"] and prep["eval"]["image_size"] == 16
  # The card shows the step's test metrics, read from its report, and the confusion matrix.
  folder = os.path.join(workdir, "eval", f"test_step{run.step}")
  report = json.loads(_read(os.path.join(folder, "report.json")))
  card = files["README.md"].decode()
  assert f"| accuracy | {report['accuracy']:.4f} |" in card and "![confusion matrix](confusion_matrix.png)" in card
  assert files["confusion_matrix.png"] == _read(os.path.join(folder, "confusion_matrix.png"), "rb")

  # The weights, in tl_jax's path layout, verified by their SHA-256 on the way down.
  pulled = hub_lib.pull("me/tiny")
  path = download.fetch_hf("hf://me/tiny", "model.safetensors")
  assert formats.is_converted(path) and "params/backbone/stem/conv/kernel" in formats.read_safetensors(path)
  info = formats.safetensors_info(path)
  assert (info["model"], info["step"], info["weights"]) == ("efficientnet_lite0", run.step, "raw")
  assert pulled.step == run.step and pulled.class_names == run.class_names
  import jax

  jax.tree.map(np.testing.assert_array_equal, jax.device_get((pulled.state.params, pulled.state.batch_stats)),
               jax.device_get((run.state.params, run.state.batch_stats)))
  want, got = predict.from_workdir(workdir, "best"), predict.from_hub("me/tiny")
  assert (got.image_size, got.class_names, got.crop_fraction, got.interpolation, got.crop) == \
      (want.image_size, want.class_names, want.crop_fraction, want.interpolation, want.crop)
  images = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
  np.testing.assert_array_equal(predict.probabilities(got, images), predict.probabilities(want, images))
  assert got.source.startswith("hf://me/tiny ")

  # Offline (HF_HUB_OFFLINE), the cached copy serves; nothing is asked of the hub.
  from huggingface_hub import constants

  monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
  hits = len(fake_hub.hits)
  assert hub_lib.pull("me/tiny").step == run.step and len(fake_hub.hits) == hits


def test_a_push_that_fails_at_its_commit_leaves_the_repo_as_it_was(tiny_run, fake_hub):
  workdir, _ = tiny_run
  first = hub_lib.push(workdir, "me/kept")
  before = fake_hub.files("me/kept")
  fake_hub.fail_commit = True
  with pytest.raises(hub_lib.PushError, match=r"(?s)to the hub repo me/kept failed: .*500.*\n"
                                              r"Nothing of this push was committed"):
    hub_lib.push(workdir, "me/kept", commit_message="a second push")
  assert fake_hub.repos["me/kept"] == [first["commit"]] and fake_hub.files("me/kept") == before
  # A new repo: created, its files uploaded (the LFS weights too), then the commit fails: no model.
  n_lfs = len(fake_hub.lfs)
  with pytest.raises(hub_lib.PushError):
    hub_lib.push(workdir, "me/broken")
  assert fake_hub.repos["me/broken"] == [] and fake_hub.files("me/broken") == {}
  assert len(fake_hub.lfs) == n_lfs  # the same weights are the same bytes: the hub holds them already
  with pytest.raises(download.DownloadError, match="me/broken"):
    hub_lib.pull("me/broken")


def test_init_path_hf_starts_a_new_run_from_the_pulled_weights(tiny_run, fake_hub, tmp_path):
  from tl_jax.train import checkpoint, trainer

  workdir, npz = tiny_run
  hub_lib.push(workdir, "me/start")
  pulled = hub_lib.pull("me/start")
  # Another seed (its random init differs); a linear probe keeps the backbone as it was loaded.
  cfg = tiny.config(npz, **{"train.compilation_cache_dir": "", "train.num_steps": 2, "seed": 1,
                            "init.pretrained": True, "init.path": "hf://me/start"})
  new = str(tmp_path / "run")
  trainer.train_and_evaluate(cfg, new)
  target = trainer.abstract_state(trainer.load_config(new), 10, 2, 0)
  import jax

  state = jax.device_get(checkpoint.Checkpoints(new).restore(2, target))
  params, want = state.params, jax.device_get(pulled.state.params)
  jax.tree.map(np.testing.assert_array_equal, params["backbone"], want["backbone"])
  jax.tree.map(np.testing.assert_array_equal, state.batch_stats, jax.device_get(pulled.state.batch_stats))
  assert not np.array_equal(params["head"]["kernel"], want["head"]["kernel"])  # init.dont_load: a new head
  # Other architectures, and malformed names, are refused with what to do.
  with pytest.raises(ValueError, match="holds weights for 'efficientnet_lite0'.*set model.name"):
    weights.load_pretrained("resnet18", path="hf://me/start")
  with pytest.raises(ValueError, match="expected hf://owner/name"):
    weights.load_pretrained("efficientnet_lite0", path="hf://just-a-name")

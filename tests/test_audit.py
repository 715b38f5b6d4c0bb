"""``mu audit`` on models and folders the tests make themselves (torchvision resnet18 with random
weights on tiny images, a registry model on digits), its clear errors before any compute, the
atomic report, the feature adapter and the one-call ``unlearn_model`` API."""

import copy
import json
import re

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

import mu_lib
from mu_lib import MuError, adapter, audit, audit_inputs, audit_report
from mu_lib.cli import main
from mu_lib.experiment import RunConfig, original_model, split_for
from mu_lib.folders import export_image_folder
from mu_lib.metrics import accuracy

CLASSES = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 4-class folder of 32x32 PNGs, a torchvision resnet18 (random weights) saved as a .pt
    state dict, and an "unlearned" copy whose head masks class 1, saved as safetensors."""
    root = tmp_path_factory.mktemp("audit")
    g = np.random.default_rng(0)
    colours = g.uniform(0.1, 0.9, (CLASSES, 3, 1, 1))
    y = np.repeat(np.arange(CLASSES), 10)
    x = np.clip(colours[y] + g.normal(0, 0.1, (len(y), 3, 32, 32)), 0, 1)
    export_image_folder(x, y, root / "folder")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    torch.save(model.state_dict(), root / "orig.pt")
    with torch.no_grad():
        model.fc.weight[1] = 0.0
        model.fc.bias[1] = -50.0
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "unl.safetensors")
    )
    return root


def cli(files, *extra, report="out", arch="resnet18", original="orig.pt"):
    args = ["audit", "--arch", arch, "--original", str(files / original)]
    args += ["--unlearned", str(files / "unl.safetensors"), "--data", str(files / "folder")]
    args += ["--forget-classes", "1", "--size", "32", "--k", "5", "--device", "cpu"]
    if report:
        args += ["--report", str(files / report)]
    return main(args + list(extra))


def test_audit_of_a_torchvision_state_dict_writes_the_report(files, capsys):
    assert cli(files, "--num-classes", "4") == 0
    line = capsys.readouterr().out
    assert line.startswith("mu audit: forget accuracy: Acc_f 0.0") and "PRA@5" in line
    out = files / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha_sweep.png",
        "audit.json",
        "features_pca.png",
        "report.md",
    ]
    rec = json.loads((out / "audit.json").read_text())
    assert rec["meta"]["arch"] == "torchvision:resnet18"  # the name was in both: keys decided
    assert rec["models"]["unlearned"]["acc_f"] == 0.0
    # the masked head hides the class; the attacks that ignore the head see it again
    knn = [r for r in rec["feature_attacks"]["unlearned"] if r["attack"] == "knn"][0]
    assert knn["acc_f"] >= 90.0
    assert rec["pra"]["unlearned"]["5"]["chosen_proto_acc_f"] > 0.0
    assert rec["ou"]["pgd"] < 1e-6  # a head mask leaves the retained classes exactly as they were
    assert "relearn" in rec and "mra" not in rec
    assert "| acc_f | " in (out / "report.md").read_text()


def _no_leftovers(files, name):
    return not (files / name).exists() and not list(files.glob(f".{name}.tmp-*"))


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "does not exist"),
        ("arch", "does not fit --arch torchvision:resnet34"),
        ("classes", "--num-classes 10 but --data"),
        ("head", "final layer has 10 outputs but --data"),
        ("pickle", "not a plain state dict"),
        ("nested", r"save checkpoint\['state_dict'\] alone"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(files, capsys, case, match):
    original, arch, extra = "orig.pt", "resnet18", []
    if case == "missing":
        original = "nope.pt"
    elif case == "arch":
        arch = "resnet34"
    elif case == "classes":
        extra = ["--num-classes", "10"]
    elif case == "head":  # a 10-class checkpoint audited on a 4-class folder
        torch.save(
            torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), files / "ten.pt"
        )
        original = "ten.pt"
    elif case == "pickle":  # a whole pickled model, never unpickled
        torch.save(torchvision.models.resnet18(weights=None, num_classes=CLASSES), files / "m.pt")
        original = "m.pt"
    elif case == "nested":
        sd = torchvision.models.resnet18(weights=None, num_classes=CLASSES).state_dict()
        torch.save({"state_dict": sd, "epoch": 3}, files / "ckpt.pth")
        original = "ckpt.pth"
    assert cli(files, *extra, report=f"bad_{case}", arch=arch, original=original) == 2
    err = capsys.readouterr().err
    assert err.startswith("mu: error:")
    assert re.search(match, err), err
    assert _no_leftovers(files, f"bad_{case}")


def test_a_failure_while_writing_leaves_no_partial_report(files, monkeypatch):
    res = audit_report.AuditResult({"summary": "x"})

    def boom(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(audit_report, "_figures", boom)
    with pytest.raises(OSError):
        audit_report.write_report(res, files / "partial")
    assert _no_leftovers(files, "partial")


def test_report_folder_that_is_not_an_audit_is_refused(files):
    (files / "busy").mkdir()
    (files / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(MuError, match="is not an earlier audit report"):
        audit_report.check_report_dir(files / "busy")


def test_audit_of_our_own_model_on_a_registry_dataset(tmp_path):
    cfg = RunConfig(method="original", profile="smoke", forget_classes=(3,), device="cpu")
    orig, _, _ = original_model(cfg)
    masked = copy.deepcopy(orig)
    with torch.no_grad():
        masked.head.weight[3] = 0.0
        masked.head.bias[3] = -100.0
    a = audit_inputs.save_checkpoint(orig, tmp_path / "o.safetensors")
    b = audit_inputs.save_checkpoint(masked, tmp_path / "u.safetensors")
    settings = audit.AuditSettings(ks=(5,), relearn=False, device="cpu")
    res = audit.audit_files("cnn_small", a, b, "digits", [3], settings=settings)
    m = res.record["models"]
    assert res.record["meta"]["arch"] == "registry:cnn_small"
    assert m["original"]["acc_f"] > 95.0 and m["unlearned"]["acc_f"] == 0.0
    assert res.record["pra"]["unlearned"]["5"]["chosen_proto_acc_f"] > 90.0
    assert m["unlearned"]["acc_rt"] == pytest.approx(m["original"]["acc_rt"], abs=1.0)


class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU())
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return torch.softmax(self.fc(self.body(x)), 1)


def test_adapter_finds_the_head_and_asks_when_it_cannot():
    x = torch.rand(2, 3, 2, 2)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))
    a = adapter.adapt(mlp, example=x)
    assert a.layer == "3" and a.head is mlp[3]
    assert torch.allclose(a.head(a.embed(x)), mlp(x))
    with pytest.raises(MuError, match=r"name it with layer=.*\['body.1', 'fc'\]"):
        adapter.adapt(Softmaxed(), example=x)
    assert adapter.adapt(Softmaxed(), layer="fc").embed(x).shape == (2, 6)
    tv = adapter.adapt(torchvision.models.resnet18(weights=None, num_classes=3), example=x)
    assert tv.layer == "fc" and tv.embed_dim == 512


def test_unlearn_model_on_a_plain_module():
    cfg = RunConfig(method="original", profile="smoke", forget_classes=(3,), device="cpu")
    split = split_for(cfg)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    from mu_lib.train import train_classifier

    train_classifier(
        net, split.x_train, split.y_train, epochs=15, lr=0.05, batch_size=64, seed=0, device="cpu"
    )
    before = copy.deepcopy(net.state_dict())
    assert accuracy(net, *split.forget_train) > 90.0
    out = mu_lib.unlearn_model(
        net, forget=split.forget_train, method="spotter", device="cpu", lr=0.01, epochs=5
    )
    assert isinstance(out, nn.Sequential) and out is not net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    assert accuracy(out, *split.forget_train) < 10.0
    assert accuracy(out, *split.retain_test) > 80.0
    with pytest.raises(MuError, match="uses retained data: pass retain="):
        mu_lib.unlearn_model(net, forget=split.forget_train, method="scrub", device="cpu")


def test_a_registry_backbone_is_tried_before_torchvision_and_timm_are_listed(monkeypatch):
    from mu_lib import audit_inputs

    monkeypatch.setattr(
        audit_inputs, "_torchvision_names", lambda: pytest.fail("listed torchvision's models")
    )
    assert next(audit_inputs.arch_sources("cnn_small")) == "registry"  # nothing else asked yet
    monkeypatch.setattr(audit_inputs, "_torchvision_names", lambda: ["resnet18"])
    assert "torchvision" in list(audit_inputs.arch_sources("resnet18"))
    with pytest.raises(MuError, match="unknown architecture 'no_such_net'"):
        list(audit_inputs.arch_sources("no_such_net"))

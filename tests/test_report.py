"""``clipinterp report``: the organism's report and a report on a user's image folder."""
import json

import numpy as np
from PIL import Image

from clipinterp.cli import main
from clipinterp.organism.world import generate
from clipinterp.report import write_report

EXPECTED = {"model", "sum_check_max_relative_error", "zero_shot_accuracy", "layer_mean_ablation", "ccs",
            "head_pursuit_top3", "aat", "ground_truth_agreement", "seconds"}


def test_organism_report_from_the_command_line(tmp_path):
    main(["report", "--model", "shapes-clip", "--out", str(tmp_path), "--n-images", "120"])
    findings = json.loads((tmp_path / "findings.json").read_text())
    assert EXPECTED <= set(findings)
    assert max(findings["sum_check_max_relative_error"].values()) < 1e-5
    agreement = findings["ground_truth_agreement"]
    # a fraction of the specialised heads: 0.6 on these 120 images and at the demo's default 500
    # (3 of 5 on direct contributions); the stated thresholds are asserted on 300 images in
    # tests/test_ccs.py. On total effects: 1.0 here and on 500 images, asserted at 0.8.
    n_specialised = sum(len(heads) for heads in agreement["specialised"].values())
    assert n_specialised >= 1 and (agreement["ccs_label_agreement"] * n_specialised) % 1 == 0
    assert agreement["ccs_label_agreement_total_effect"] >= 0.8
    assert agreement["ccs_label_agreement_top_direct"] >= 0.5  # measured 0.67 (4 of 6 attributes)
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "http://" not in page and "https://" not in page


def test_report_on_an_image_folder_with_captions(tmp_path, tiny_folder):
    folder = tmp_path / "images"
    folder.mkdir()
    batch = generate("test", 8, seed=2)
    for i, image in enumerate(batch.images):
        Image.fromarray(np.asarray(image)).save(folder / f"{i:02d}.png")
    (tmp_path / "captions.txt").write_text("\n".join(batch.captions) + "\n")
    findings = write_report(str(tiny_folder), tmp_path / "out", images=str(folder),
                            captions=str(tmp_path / "captions.txt"))
    assert {"model", "sum_check_max_relative_error", "ccs", "head_pursuit_top3", "aat"} <= set(findings)
    assert "ground_truth_agreement" not in findings
    assert (tmp_path / "out" / "index.html").exists()


def test_an_interrupted_report_keeps_its_finished_sections(tmp_path, tiny_folder, monkeypatch, capsys):
    import pytest

    import clipinterp.report as report

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(generate("test", 4, seed=3).images):
        Image.fromarray(np.asarray(image)).save(folder / f"{i:02d}.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    bars = []

    def recorded_bar(*args, **kwargs):
        bars.append(report_tqdm(*args, **kwargs))
        return bars[-1]

    report_tqdm = report.tqdm
    monkeypatch.setattr(report, "tqdm", recorded_bar)
    monkeypatch.setattr(report, "_ccs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(str(tiny_folder), tmp_path / "out", images=str(folder))
    assert len(bars) == 1 and bars[0].disable  # the section bar was closed on the way out
    findings = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert {"model", "sum_check_max_relative_error"} <= set(findings) and "ccs" not in findings
    assert "Decomposition sum check" in (tmp_path / "out" / "index.html").read_text()
    assert "report:" in capsys.readouterr().err  # the section bar
    with pytest.raises(ValueError, match="n_images must be at least 1"):
        write_report(str(tiny_folder), tmp_path / "out", images=str(folder), n_images=0)
    with pytest.raises(SystemExit):
        main(["report", "--model", "shapes-clip", "--n-images", "-1"])
    assert "must be at least 1" in capsys.readouterr().err


def test_the_cli_runs_as_a_module():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "clipinterp.cli", "report", "--n-images", "0"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--n-images: must be at least 1" in done.stderr

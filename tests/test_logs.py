import subprocess
import sys

from cmbflow.logs import progress


def test_an_uncaught_error_of_a_rule_script_reaches_its_log_and_stderr(tmp_path):
    log = tmp_path / "rule.log"
    script = f"from cmbflow.logs import setup_logging\nsetup_logging({str(log)!r})\nraise ValueError('bad input x.nii.gz')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ValueError: bad input x.nii.gz" in log.read_text() and "Traceback" in log.read_text()
    assert "ValueError: bad input x.nii.gz" in result.stderr


def test_warnings_can_reach_the_console_as_well_as_the_log(tmp_path):
    log = tmp_path / "rule.log"
    script = (f"import logging\nfrom cmbflow.logs import setup_logging\nsetup_logging({str(log)!r}, echo_warnings=True)\n"
              "logging.getLogger('cmbflow').info('routine')\nlogging.getLogger('cmbflow').warning('set magnitude: gre')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "routine" in log.read_text() and "set magnitude: gre" in log.read_text()
    assert "set magnitude: gre" in result.stderr and "routine" not in result.stderr


def test_progress_bars_switch_on_and_off(capsys):
    assert list(progress(range(3), enabled=False, desc="quiet")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    assert list(progress(range(3), enabled=True, desc="shown")) == [0, 1, 2]
    assert "shown" in capsys.readouterr().err

#!/usr/bin/env bash
# ansible-test bootstraps pip in its venvs with a get-pip script from ci-files.testing.ansible.com, which this
# network cannot reach. It looks for a cached copy first: give it one that runs pip from the PyPI pip wheel instead.
set -euo pipefail

python=${PYTHON:-.venv/bin/python}
pip_version=$("$python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
cache=~/.ansible/test/cache
script=$cache/get_pip_${pip_version//./_}.py
[ -s "$script" ] && exit 0
mkdir -p "$cache"
"$python" -m pip download -q --no-deps -d "$cache" "pip==$pip_version"
cat >"$script" <<PY
# Written by oci_gpu.vllm scripts/ansible-test-pip-bootstrap.sh: installs pip $pip_version from its PyPI wheel.
import glob
import os
import sys

wheel = glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pip-$pip_version-*.whl"))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main  # noqa: E402

# get-pip's own flags: this script installs only what it is asked for, so they need no action.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *args]))
PY
echo "ansible-test: pip $pip_version bootstrap script cached at $script"

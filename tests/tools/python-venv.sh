# Sourced by the Python tools' install.sh: install tests/tools/<tool>/requirements.txt
# into the venv the Python tools share at $TOOLS_DIR/venv, one tool at a time.
# Idempotent: a copy of requirements.txt inside the venv says what is installed.
# On failure the last line on stderr says why (install-all.sh records it as the skip reason).
#   install_requirements <tool> <tool dir>   sets $venv
install_requirements() {
  local tool=$1 here=$2
  local root tools_dir stamp
  root=$(cd "$here/../../.." && pwd)
  tools_dir=${TOOLS_DIR:-${CARGO_TARGET_DIR:-$root/target}/tools}
  venv=$tools_dir/venv
  command -v python3 >/dev/null || fail "no python3 on PATH"
  mkdir -p "$tools_dir"
  exec 9>"$tools_dir/venv.lock"
  flock 9
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || { rm -rf "$venv"; fail "python3 -m venv failed"; }
  fi
  stamp=$venv/.$tool-requirements.txt
  if ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt" >&2 \
      || fail "pip install -r tests/tools/$tool/requirements.txt failed"
    cp "$here/requirements.txt" "$stamp"
  fi
}

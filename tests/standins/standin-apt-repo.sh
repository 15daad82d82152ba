#!/usr/bin/env bash
# Build the NVIDIA STAND-IN apt repository used by the tests (no real NVIDIA software is involved).
#   tests/standins/standin-apt-repo.sh OUTDIR
# Every dpkg-deb tree under tests/standins/packages/<dir>/ becomes a .deb in the flat repository OUTDIR
# (Packages, Packages.gz, Release, InRelease, Release.gpg), signed with a throwaway key that is generated on the
# first build and exported as OUTDIR/standin-archive-keyring.gpg (binary; .asc: the same key ASCII-armored).  Use it as:
#   deb [signed-by=/path/standin-archive-keyring.gpg] http://HOST/ ./
# Templated trees (a `standin.vars` file) are described in tests/standins/README.md.
# Fast on re-run: a tree is packed again only when its content changed; the index is re-signed only when it changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${STANDIN_PACKAGES_DIR:-$here/packages}
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/.work"
mkdir -p "$work/stamps"
# one build at a time per OUTDIR (parallel Molecule prepares may share one)
exec 9>"$work/lock"
flock 9
for tool in dpkg-deb dpkg-scanpackages gpg gzip sha256sum; do
  command -v "$tool" >/dev/null || { echo "standin-apt-repo: $tool is missing (apt-get install dpkg-dev gnupg)" >&2; exit 1; }
done

# --- expand templated trees ---------------------------------------------------------------------------------------
# substitute VAR=VALUE pairs ("$@") as @VAR@ in file contents and path names of tree $1
substitute() {
  local tree=$1; shift
  local sed_args=() pair key value path newpath
  for pair in "$@"; do
    key=${pair%%=*}; value=${pair#*=}
    sed_args+=(-e "s|@${key}@|${value}|g")
  done
  [ ${#sed_args[@]} -gt 0 ] || return 0
  find "$tree" -type f -print0 | xargs -0 -r grep -lZ '@[A-Z_]*@' | xargs -0 -r sed -i "${sed_args[@]}"
  # rename deepest paths first so parents still exist under their old names
  find "$tree" -depth -name '*@*@*' -print0 | while IFS= read -r -d '' path; do
    newpath="$(dirname "$path")/$(basename "$path" | sed "${sed_args[@]}")"
    mv "$path" "$newpath"
  done
}

# true when every KEY=VALUE of the template's standin.only file ($1) is among the line's pairs ("${@:2}")
line_selected() {
  local only=$1 condition; shift
  [ -f "$only" ] || return 0
  for condition in $(grep -v '^#' "$only" || true); do
    printf '%s\n' "$@" | grep -qxF "$condition" || return 1
  done
}

# Trees are expanded afresh on every run (cheap); a numbered directory per line keeps two lines that expand to the
# same directory name (two versions of one package) apart.
rm -rf "$work/trees"
mkdir -p "$work/trees"
trees=()
for dir in "$src"/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  if [ -f "$dir/standin.vars" ]; then
    n=0
    while read -r line; do
      case "$line" in '' | '#'*) continue ;; esac
      read -r -a pairs <<<"$line"
      line_selected "$dir/standin.only" "${pairs[@]}" || continue
      name_sed=()
      for pair in "${pairs[@]}"; do name_sed+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
      expanded_name=$(printf '%s' "$name" | sed "${name_sed[@]}")
      n=$((n + 1))
      tree="$work/trees/$expanded_name.$n"
      cp -a "$dir" "$tree"
      rm -f "$tree"/standin.*  # standin.vars, standin.only, standin.notes: build inputs, not package content
      substitute "$tree" "${pairs[@]}"
      trees+=("$tree")
    done <"$dir/standin.vars"
  else
    trees+=("$dir")
  fi
done

# --- pack changed trees -------------------------------------------------------------------------------------------
tree_digest() {
  (cd "$1" && find . \( -type f -o -type l \) -printf '%p %m %l\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat) \
    | sha256sum | cut -c1-32
}

wanted=()
for tree in "${trees[@]}"; do
  control="$tree/DEBIAN/control"
  [ -f "$control" ] || { echo "standin-apt-repo: $tree has no DEBIAN/control" >&2; exit 1; }
  grep -q '^Description:.*STAND-IN' "$control" || { echo "standin-apt-repo: $control: Description must say STAND-IN" >&2; exit 1; }
  package=$(sed -n 's/^Package: *//p' "$control")
  version=$(sed -n 's/^Version: *//p' "$control")
  arch=$(sed -n 's/^Architecture: *//p' "$control")
  deb="${package}_${version//:/%3a}_${arch}.deb"
  if [ ${#wanted[@]} -gt 0 ] && printf '%s\n' "${wanted[@]}" | grep -qxF "$deb"; then
    echo "standin-apt-repo: $deb comes from two sources (a vars line given twice?); the last was $tree" >&2
    exit 1
  fi
  wanted+=("$deb")
  digest=$(tree_digest "$tree")
  if [ -f "$out/$deb" ] && [ "$(cat "$work/stamps/$deb.digest" 2>/dev/null)" = "$digest" ]; then
    continue
  fi
  find "$tree/DEBIAN" -maxdepth 1 -type f \( -name preinst -o -name postinst -o -name prerm -o -name postrm -o -name config \) -exec chmod 0755 {} +
  chmod 0755 "$tree/DEBIAN"
  dpkg-deb --root-owner-group -Zgzip --build "$tree" "$out/$deb" >/dev/null
  echo "$digest" >"$work/stamps/$deb.digest"
  echo "standin-apt-repo: built $deb"
done

# drop packages whose source is gone
for deb in "$out"/*.deb; do
  [ -e "$deb" ] || continue
  base=$(basename "$deb")
  printf '%s\n' "${wanted[@]}" | grep -qxF "$base" || { rm -f "$deb" "$work/stamps/$base.digest"; echo "standin-apt-repo: removed $base"; }
done

# --- index and sign -----------------------------------------------------------------------------------------------
(cd "$out" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null) >"$work/Packages.new"
indexed=$(grep -c '^Package: ' "$work/Packages.new" || true)
if [ "$indexed" != "${#wanted[@]}" ]; then
  echo "standin-apt-repo: indexed $indexed packages but built ${#wanted[@]}: ${wanted[*]}" >&2
  exit 1
fi
if [ -f "$out/InRelease" ] && [ -f "$out/standin-archive-keyring.asc" ] && cmp -s "$work/Packages.new" "$out/Packages"; then
  echo "standin-apt-repo: $out is up to date (${#wanted[@]} packages)"
  exit 0
fi
mv "$work/Packages.new" "$out/Packages"
gzip -9n -c "$out/Packages" >"$out/Packages.gz"

hash_section() { # $1 = field name, $2 = hashing tool
  echo "$1:"
  for f in Packages Packages.gz; do
    printf ' %s %s %s\n' "$("$2" "$out/$f" | cut -d' ' -f1)" "$(stat -c %s "$out/$f")" "$f"
  done
}
{
  echo "Origin: oci_gpu.vllm STAND-IN"
  echo "Label: NVIDIA STAND-IN packages (tests only)"
  echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
  echo "Architectures: all amd64 arm64"
  echo "Description: STAND-IN for NVIDIA's CUDA repository, built by tests/standins/standin-apt-repo.sh"
  hash_section MD5Sum md5sum
  hash_section SHA1 sha1sum
  hash_section SHA256 sha256sum
} >"$out/Release"

# The key lives in OUTDIR so re-runs keep the same keyring; gpg itself runs in a short-lived home under /tmp
# (its agent socket path must stay short).
GNUPGHOME=$(mktemp -d /tmp/standin-gpg.XXXXXX)
export GNUPGHOME
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
gpg_batch=(gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '')
if [ -s "$work/secret-key.gpg" ]; then
  "${gpg_batch[@]}" --import "$work/secret-key.gpg" 2>/dev/null
else
  "${gpg_batch[@]}" --quick-generate-key "oci_gpu.vllm STAND-IN archive key (tests only) <tests@example.invalid>" ed25519 sign never
  "${gpg_batch[@]}" --export-secret-keys >"$work/secret-key.gpg"
  chmod 0600 "$work/secret-key.gpg"
fi
"${gpg_batch[@]}" --export >"$out/standin-archive-keyring.gpg"
"${gpg_batch[@]}" --armor --export >"$out/standin-archive-keyring.asc"
"${gpg_batch[@]}" --clearsign -o "$out/InRelease" "$out/Release"
"${gpg_batch[@]}" --armor --detach-sign -o "$out/Release.gpg" "$out/Release"
echo "standin-apt-repo: signed $out (${#wanted[@]} packages)"

#!/usr/bin/env bash
# Installing tally (ctest: install/test_install). Installs the build under test with
# cmake --install into a temporary DESTDIR and checks:
#   - exactly the expected files, at the configured paths: the four programs (not
#     tally-bench), tally.conf, tallyd@.service, deploy/ (without debian/), the README;
#   - tally.conf is what the installed tallyd --print-config prints, holds one setting line
#     per option of tallyd --help, each key once, and with every setting uncommented is
#     read back by the installed tallyd (which then runs a simulated election);
#   - the installed unit is deploy/systemd/tallyd@.service with this build's paths, passes
#     systemd-analyze verify (with the installed tree as root: ExecStart must be the
#     installed tallyd) and systemd-analyze security --offline at exposure 2.0 or less;
#   - the installed tallyd: --help exits 0, --simulate --voters 20000 --quiet exits 0 with
#     every figure matching;
#   - cpack makes one .deb: package tally, Depends naming the libraries the programs link,
#     tally.conf a conffile, maintainer scripts present, and its files exactly the DESTDIR
#     tree, byte for byte.
# Exits 1 on any failure; 77 (skipped) only when every check it could make passed and
# systemd-analyze or dpkg-deb is not installed (scripts/setup installs both).
#
# usage: test_install.sh BUILD SRC CMAKE CPACK BINDIR CONFDIR UNITDIR DEPLOYDIR DOCDIR
# (absolute install paths, as the build configured them).
set -euo pipefail

if [ $# -ne 9 ]; then
	echo "usage: $0 BUILD SRC CMAKE CPACK BINDIR CONFDIR UNITDIR DEPLOYDIR DOCDIR" >&2
	exit 2
fi
build=$1 src=$2 cmake=$3 cpack=$4 bindir=$5 confdir=$6 unitdir=$7 deploydir=$8 docdir=$9
datarootdir=${deploydir%/tally/deploy}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tally-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
failures=0
skipped=()

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}
die() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() {
	echo "ok: $*"
}

# ---- cmake --install ------------------------------------------------------------------
if ! DESTDIR=$root "$cmake" --install "$build" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log" >&2
	die "cmake --install $build failed"
fi
ok "cmake --install into DESTDIR $root"

# Every regular file and link of a tree, relative to it, sorted.
tree_list() {
	(cd "$1" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort)
}

{
	for p in tally-dq tally-gen tally-sim tallyd; do echo "$bindir/$p"; done
	echo "$confdir/tally.conf"
	echo "$unitdir/tallyd@.service"
	echo "$docdir/README.md"
	(cd "$src/deploy" && find . \( -type f -o -type l \) -not -path './debian/*' -printf "$deploydir/%P\n")
} | LC_ALL=C sort >"$tmp/expected.list"
tree_list "$root" >"$tmp/installed.list"
if diff -u "$tmp/expected.list" "$tmp/installed.list" >"$tmp/list.diff"; then
	ok "installed exactly $(wc -l <"$tmp/expected.list") files at the configured paths"
else
	cat "$tmp/list.diff" >&2
	fail "the installed files differ from the expected ones (- expected, + installed)"
fi
for p in tally-dq tally-gen tally-sim tallyd; do
	[ -x "$root$bindir/$p" ] || fail "$bindir/$p is not executable"
done
[ -x "$root$bindir/tallyd" ] || die "no installed tallyd to run"
tallyd=$root$bindir/tallyd

# ---- the installed tallyd ---------------------------------------------------------------
rc=0
"$tallyd" --help >"$tmp/help.out" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -q '^usage: tallyd ' "$tmp/help.out" &&
	grep -q '^  --print-config ' "$tmp/help.out"; then
	ok "installed tallyd --help"
else
	cat "$tmp/help.out" >&2
	fail "installed tallyd --help exited $rc (or printed no usage line or no --print-config)"
fi
rc=0
"$tallyd" --simulate --voters 20000 --quiet >"$tmp/sim.out" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -q '^result: all [0-9]* figures match the ground truth$' "$tmp/sim.out"; then
	ok "installed tallyd --simulate --voters 20000 --quiet: $(grep '^result:' "$tmp/sim.out")"
else
	cat "$tmp/sim.out" >&2
	fail "installed tallyd --simulate --voters 20000 --quiet exited $rc"
fi

# ---- tally.conf ---------------------------------------------------------------------------
conf=$root$confdir/tally.conf
"$tallyd" --print-config >"$tmp/print-config.out" || fail "installed tallyd --print-config exited $?"
if cmp -s "$conf" "$tmp/print-config.out"; then
	ok "tally.conf is tallyd --print-config's output"
else
	diff -u "$conf" "$tmp/print-config.out" >&2 || true
	fail "tally.conf differs from tallyd --print-config (- installed, + printed)"
fi
grep -qF "reads $confdir/tally.conf" "$conf" || fail "tally.conf does not name $confdir/tally.conf"
# The options tallyd --help lists (--print-config is not one: it is not a setting).
sed -n 's/^  --\([a-z][a-z0-9.-]*\).*/\1/p' "$tmp/help.out" | grep -vx 'print-config' |
	LC_ALL=C sort >"$tmp/help.keys"
# The setting lines: '#' then a key; prose lines start with "# " or are a lone '#'.
sed -n 's/^#\([a-z][a-z0-9.-]*\) =.*/\1/p' "$conf" | LC_ALL=C sort >"$tmp/conf.keys"
nkeys=$(wc -l <"$tmp/help.keys")
if [ "$nkeys" -lt 30 ]; then
	fail "tallyd --help lists only $nkeys options"
elif ! diff -u "$tmp/help.keys" "$tmp/conf.keys" >"$tmp/keys.diff"; then
	cat "$tmp/keys.diff" >&2
	fail "tally.conf's settings are not tallyd's options, each once (- --help, + tally.conf)"
else
	ok "tally.conf has one setting line per option ($nkeys), each key once"
fi
if grep -v '^# \|^#$\|^$' "$conf" | grep -v '^#[a-z][a-z0-9.-]* =' >"$tmp/stray.lines"; then
	cat "$tmp/stray.lines" >&2
	fail "tally.conf has lines that are neither prose, blank nor settings"
fi
# Every setting uncommented: the installed tallyd reads it back (a key set twice, an unknown
# key or a bad value would stop it with FILE:LINE), then counts with the command line's
# options on top of it.
sed 's/^#\([a-z]\)/\1/' "$conf" >"$tmp/uncommented.conf"
rc=0
"$tallyd" --config "$tmp/uncommented.conf" --simulate --voters 20000 --quiet >"$tmp/conf.out" 2>&1 || rc=$?
if [ $rc -eq 0 ] && grep -q '^result: all [0-9]* figures match the ground truth$' "$tmp/conf.out"; then
	ok "tally.conf with every setting uncommented is read back by the installed tallyd"
else
	cat "$tmp/conf.out" >&2
	fail "installed tallyd --config (tally.conf uncommented) exited $rc"
fi

# ---- the unit -----------------------------------------------------------------------------
unit=$root$unitdir/tallyd@.service
sed -e "s|/usr/bin/|$bindir/|g" -e "s|/etc/tally/|$confdir/|g" -e "s|/usr/share/|$datarootdir/|g" \
	"$src/deploy/systemd/tallyd@.service" >"$tmp/unit.expected"
if cmp -s "$tmp/unit.expected" "$unit"; then
	ok "the installed unit is deploy/systemd/tallyd@.service with this build's paths"
else
	diff -u "$tmp/unit.expected" "$unit" >&2 || true
	fail "the installed unit differs from deploy/systemd/tallyd@.service with this build's paths"
fi
for line in 'Type=notify' 'NotifyAccess=main' 'Restart=on-failure' 'KillSignal=SIGTERM' \
	'DynamicUser=yes' "EnvironmentFile=-$confdir/tallyd.env" \
	"ExecStart=$bindir/tallyd --config $confdir/tally.conf --instance-id %i \$TALLYD_ARGS"; do
	grep -qxF "$line" "$unit" || fail "the unit has no line \"$line\""
done
if command -v systemd-analyze >/dev/null; then
	# The installed tree as root: the unit's search path and ExecStart resolve in it.
	if systemd-analyze verify --root="$root" --recursive-errors=no --man=no \
		"$unit" >"$tmp/verify.out" 2>&1 && [ ! -s "$tmp/verify.out" ]; then
		ok "systemd-analyze verify: no complaint"
	else
		cat "$tmp/verify.out" >&2
		fail "systemd-analyze verify complained about the installed unit"
	fi
	rc=0
	systemd-analyze security --offline=true --root="$root" --threshold=20 --no-pager \
		"$unit" >"$tmp/security.out" 2>&1 || rc=$?
	level=$(sed -n 's/.*Overall exposure level for [^:]*: //p' "$tmp/security.out")
	if [ $rc -eq 0 ] && [ -n "$level" ]; then
		ok "systemd-analyze security --offline: exposure $level (2.0 at most)"
	else
		cat "$tmp/security.out" >&2
		fail "systemd-analyze security --offline: exposure ${level:-unknown} above 2.0 (exit $rc)"
	fi
else
	skipped+=("systemd-analyze is not installed (Debian package systemd)")
fi

# ---- the Debian package -------------------------------------------------------------------
if command -v dpkg-deb >/dev/null; then
	if ! "$cpack" --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1; then
		cat "$tmp/cpack.log" >&2
		die "cpack failed"
	fi
	debs=("$tmp"/pkg/*.deb)
	[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || die "cpack made ${#debs[@]} .deb files, not 1"
	deb=${debs[0]}
	ok "cpack made $(basename "$deb")"
	[ "$(dpkg-deb -f "$deb" Package)" = tally ] || fail "the package is not named tally"
	depends=$(dpkg-deb -f "$deb" Depends)
	for lib in libc6 libcurl4 libjansson4 libmicrohttpd12 libpq5 librdkafka1; do
		# A whole package name: at the start or after ", ", then a version, ',' or the end.
		grep -qE "(^|, )$lib( \(|,|$)" <<<"$depends" || fail "Depends lacks $lib: $depends"
	done
	ok "Depends: $depends"
	dpkg-deb -e "$deb" "$tmp/control"
	if [ "$(cat "$tmp/control/conffiles")" = "$confdir/tally.conf" ]; then
		ok "conffiles: $confdir/tally.conf"
	else
		fail "conffiles is not exactly $confdir/tally.conf: $(cat "$tmp/control/conffiles")"
	fi
	for s in postinst prerm postrm; do
		[ -x "$tmp/control/$s" ] || fail "the package has no executable $s"
	done
	# Its files are the DESTDIR tree's, byte for byte (the listing names bin/tallyd and the unit).
	dpkg-deb -c "$deb" >"$tmp/deb.contents"
	for f in "$bindir/tallyd" "$unitdir/tallyd@.service" "$confdir/tally.conf"; do
		grep -qE "^-rw[-x]r-[-x]r-[-x] root/root +[0-9]+ [0-9-]+ [0-9:]+ \.$f\$" "$tmp/deb.contents" ||
			fail "dpkg-deb -c does not list .$f (root-owned)"
	done
	dpkg-deb -x "$deb" "$tmp/deb"
	if diff -r "$root" "$tmp/deb" >"$tmp/deb.diff" 2>&1; then
		ok "the package's files are exactly cmake --install's"
	else
		cat "$tmp/deb.diff" >&2
		fail "the package's files differ from cmake --install's"
	fi
else
	skipped+=("dpkg-deb is not installed: no package built")
fi

if [ $failures -gt 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
if [ ${#skipped[@]} -gt 0 ]; then
	printf 'SKIPPED: %s\n' "${skipped[@]}"
	exit 77
fi
echo "all install checks passed"

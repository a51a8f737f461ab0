'use strict';
// The Debian package (scripts/deb) on a clean Debian 12 root filesystem: the debootstrap base
// image, in a container with the host's network (apt reaches the machine's mirror). Install,
// --check-config as the package's user, remove (conffiles stay), purge (nothing stays); the
// unit checked by systemd-analyze verify where systemd is installed.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { BASE, LABEL, docker } = require('./lib');

const DEB = process.env.WSHUB_DEB && path.resolve(process.env.WSHUB_DEB);
const T = { timeout: 600000 };

// Runs a bash script in a fresh container of the base image with the .deb at /tmp/wshub.deb.
// The script prints "ok <check>" lines; resolves {code, out, checks}.
async function inBase(script) {
  const r = await docker(['run', '--rm', '--network', 'host', '--label', LABEL,
    '-v', `${DEB}:/tmp/wshub.deb:ro`, BASE, 'bash', '-c', `set -euo pipefail\n${script}`], { timeout: 540000 });
  const out = r.stdout + r.stderr;
  return { code: r.code, out, checks: new Set(out.split('\n').filter((l) => l.startsWith('ok ')).map((l) => l.slice(3))) };
}

function expectChecks(r, names) {
  for (const n of names) assert.ok(r.checks.has(n), `check "${n}" did not pass:\n${r.out.slice(-4000)}`);
  assert.equal(r.code, 0, r.out.slice(-4000));
}

test('the .deb installs on a clean Debian 12, --check-config passes as its user, remove keeps the conffiles, purge removes everything', T, async (t) => {
  if (!DEB) { t.skip('WSHUB_DEB is not set (scripts/docker-test builds it with scripts/deb)'); return; }
  console.log(`# ${path.basename(DEB)}`);
  const r = await inBase(`
export DEBIAN_FRONTEND=noninteractive
find / -xdev \\( -path /proc -o -path /sys -o -path /tmp \\) -prune -o -print 2>/dev/null | sort >/tmp/before
apt-get update -qq
apt-get install -y -qq /tmp/wshub.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
dpkg-query -W -f='\${Status}\\n' wshub | grep -qx 'install ok installed' && echo "ok installed"
/usr/bin/wshubd --version | grep -q '^wshubd ' && echo "ok runs"
getent passwd wshub | grep -q ':/nonexistent:/usr/sbin/nologin$' && echo "ok system user without a home or shell"
[ "$(id -u wshub)" -lt 1000 ] && echo "ok system uid"
[ "$(stat -c '%U:%G %a' /etc/wshub/wshub.json)" = "root:wshub 640" ] && echo "ok config readable by wshub only"
[ "$(stat -c '%U:%G %a' /etc/default/wshub)" = "root:root 600" ] && echo "ok environment file root only"
[ -f /lib/systemd/system/wshubd.service ] && echo "ok unit installed"
runuser -u wshub -- /usr/bin/wshubd --check-config -c /etc/wshub/wshub.json && echo "ok check-config as wshub"
# A bad key is reported: the check really checks.
echo '{"listen": "127.0.0.1:0"}' >/tmp/bad.json
if ! /usr/bin/wshubd --check-config -c /tmp/bad.json 2>/dev/null; then echo "ok check-config refuses a bad file"; fi
# The admin's edit of a conffile survives remove; purge takes it.
sed -i 's/"level": "info"/"level": "warn"/' /etc/wshub/wshub.json
apt-get remove -y -qq wshub >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
[ ! -e /usr/bin/wshubd ] && [ ! -e /lib/systemd/system/wshubd.service ] && echo "ok remove: binary and unit gone"
grep -q '"level": "warn"' /etc/wshub/wshub.json && echo "ok remove: edited conffile kept"
getent passwd wshub >/dev/null && echo "ok remove: user kept until purge"
apt-get purge -y -qq wshub >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
[ ! -e /etc/wshub ] && [ ! -e /etc/default/wshub ] && echo "ok purge: conffiles and /etc/wshub gone"
! getent passwd wshub >/dev/null && ! getent group wshub >/dev/null && echo "ok purge: user and group gone"
! dpkg-query -W wshub 2>/dev/null | grep -q . && echo "ok purge: unknown to dpkg"
# Nothing of the package is left: the files that differ from before are apt's and dpkg's own
# bookkeeping and the dependencies it pulled in.
find / -xdev \\( -path /proc -o -path /sys -o -path /tmp \\) -prune -o -print 2>/dev/null | sort >/tmp/after
left=$(comm -13 /tmp/before /tmp/after | grep -i wshub || true)
[ -z "$left" ] && echo "ok purge: no file named wshub left" || echo "left: $left"
`);
  expectChecks(r, ['installed', 'runs', 'system user without a home or shell', 'system uid', 'config readable by wshub only',
    'environment file root only', 'unit installed', 'check-config as wshub', 'check-config refuses a bad file',
    'remove: binary and unit gone', 'remove: edited conffile kept', 'remove: user kept until purge',
    'purge: conffiles and /etc/wshub gone', 'purge: user and group gone', 'purge: unknown to dpkg', 'purge: no file named wshub left']);
});

test('wshubd.service passes systemd-analyze verify (systemd installed, the package installed)', T, async (t) => {
  if (!DEB) { t.skip('WSHUB_DEB is not set'); return; }
  const r = await inBase(`
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq systemd /tmp/wshub.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
out=$(systemd-analyze verify /lib/systemd/system/wshubd.service 2>&1) && [ -z "$out" ] && echo "ok verify" || echo "verify: $out"
systemd-analyze security --offline=yes /lib/systemd/system/wshubd.service 2>&1 | tail -1
grep -qx 'Type=notify' /lib/systemd/system/wshubd.service && echo "ok Type=notify"
ldd /usr/bin/wshubd | grep -q libsystemd && echo "ok linked with libsystemd (sd_notify)"
`);
  const score = /Overall exposure level for .*: ([\d.]+) (\S+)/.exec(r.out);
  if (score) console.log(`# systemd-analyze security: exposure ${score[1]} ${score[2]}`);
  expectChecks(r, ['verify', 'Type=notify', 'linked with libsystemd (sd_notify)']);
});

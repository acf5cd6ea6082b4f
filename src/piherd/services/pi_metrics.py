"""The Pi's own signals as node_exporter textfile metrics: a fixed script, its unit and timer.

Every node of a monitored cluster runs `piherd-pi-metrics` from a systemd timer. It reads
what `piherd status` reads (health/probe.py): `vcgencmd get_throttled` where the firmware
tool exists, else the `rpi_volt` hwmon alarm; the SoC temperature from
/sys/class/thermal/thermal_zone0/temp; whether / is mounted read-only. It writes them to
node_exporter's textfile directory (atomically: a temp file, then a rename), so they
reach Prometheus with the node's other series. The script is fixed text: nothing from
cluster.toml is interpolated into it. Metric names: `METRICS` (and docs/monitoring.md).
"""

from __future__ import annotations

from piherd.health.probe import SINCE_BOOT_SHIFT, THROTTLE_FLAGS
from piherd.model import Cluster
from piherd.model.specs import FileSpec
from piherd.render.spec import header, text

SCRIPT_PATH = "/usr/local/sbin/piherd-pi-metrics"
UNIT_NAME = "piherd-pi-metrics.service"
TIMER_NAME = "piherd-pi-metrics.timer"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
TIMER_PATH = f"/etc/systemd/system/{TIMER_NAME}"
# Debian's default for node_exporter's --collector.textfile.directory (the package makes it).
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
PROM_FILE = "piherd_pi.prom"

# name -> help: every series the script can write (all gauges).
METRICS: dict[str, str] = {
    "piherd_pi_soc_temperature_celsius": "SoC temperature (/sys/class/thermal/thermal_zone0/temp)",
    "piherd_pi_under_voltage": "1 while the supply is below ~4.63 V (get_throttled bit 0, "
    "else the rpi_volt hwmon alarm)",
    "piherd_pi_throttled": "get_throttled flags: 1 when set, by flag and when (now|since_boot)",
    "piherd_pi_throttled_mask": "the raw get_throttled bit mask (vcgencmd only)",
    "piherd_pi_root_read_only": "1 when / is mounted read-only (a worn SD card turns ro)",
}


def _throttle_lines() -> str:
    """Shell lines writing one piherd_pi_throttled sample per flag and `when`."""
    lines = []
    for bit, flag in THROTTLE_FLAGS:
        for when, shift in (("now", 0), ("since_boot", SINCE_BOOT_SHIFT)):
            lines.append(
                f'  printf \'piherd_pi_throttled{{flag="{flag}",when="{when}"}} %d\\n\' '
                f"$(( (mask >> {bit + shift}) & 1 ))"
            )
    return "\n".join(lines)


def _help(name: str) -> str:
    return f"  printf '# HELP {name} {METRICS[name]}\\n# TYPE {name} gauge\\n'"


# POSIX sh (dash on Debian and Raspberry Pi OS); reads only fixed paths.
SCRIPT = f"""# piherd-pi-metrics: the Pi's own signals for node_exporter's textfile collector.
# Written by piherd; metric names are listed in piherd's docs/monitoring.md.
set -u
dir={TEXTFILE_DIR}
out=$dir/{PROM_FILE}
tmp=$dir/.{PROM_FILE}.$$
trap 'rm -f "$tmp"' EXIT
umask 022

hex_mask() {{  # the get_throttled mask as a decimal number, or nothing
  v=$(vcgencmd get_throttled 2>/dev/null) || return 0
  v=${{v#throttled=}}
  case $v in 0x*) v=${{v#0x}} ;; *) return 0 ;; esac
  case $v in ''|*[!0-9a-fA-F]*) return 0 ;; esac
  [ "${{#v}}" -le 8 ] || return 0
  echo $(( 0x$v ))
}}

hwmon_alarm() {{  # the rpi_volt under-voltage alarm (0/1), or nothing
  for h in /sys/class/hwmon/hwmon*; do
    n=""; read -r n 2>/dev/null < "$h/name"
    if [ "$n" = rpi_volt ]; then
      a=""; read -r a 2>/dev/null < "$h/in0_lcrit_alarm"
      case $a in 0|1) echo "$a" ;; esac
      return 0
    fi
  done
}}

{{
  t=""; read -r t 2>/dev/null < /sys/class/thermal/thermal_zone0/temp
  case $t in
    ''|*[!0-9-]*|?*-*) ;;
    *)
{_help("piherd_pi_soc_temperature_celsius")}
      awk -v t="$t" 'BEGIN {{ printf "piherd_pi_soc_temperature_celsius %.3f\\n", t / 1000 }}' ;;
  esac
  mask=""
  if command -v vcgencmd >/dev/null 2>&1; then mask=$(hex_mask); fi
  if [ -n "$mask" ]; then
{_help("piherd_pi_under_voltage")}
  printf 'piherd_pi_under_voltage %d\\n' $(( mask & 1 ))
{_help("piherd_pi_throttled_mask")}
  printf 'piherd_pi_throttled_mask %d\\n' "$mask"
{_help("piherd_pi_throttled")}
{_throttle_lines()}
  else
    alarm=$(hwmon_alarm)
    if [ -n "$alarm" ]; then
{_help("piherd_pi_under_voltage")}
      printf 'piherd_pi_under_voltage %d\\n' "$alarm"
    fi
  fi
{_help("piherd_pi_root_read_only")}
  # PID 1's view: this unit's own (ProtectSystem=strict) has / read-only by design.
  awk '$2 == "/" {{ ro = ($4 ~ /(^|,)ro(,|$)/) }}
       END {{ printf "piherd_pi_root_read_only %d\\n", ro }}' /proc/1/mounts
}} > "$tmp" || exit 1
mv -f "$tmp" "$out"
"""


def files(cluster: Cluster, interval_s: int) -> list[FileSpec]:
    """The script, its oneshot unit and the timer that runs it every `interval_s` seconds."""
    restart = (TIMER_NAME,)
    unit = text(
        cluster,
        UNIT_PATH,
        [
            "[Unit]",
            "Description=piherd: the Pi's own signals for node_exporter (textfile collector)",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={SCRIPT_PATH}",
            # Root reads vcgencmd (/dev/vchiq on a Pi); everything else is read-only to it.
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            f"ReadWritePaths={TEXTFILE_DIR}",
        ],
        restarts=restart,
    )
    timer = text(
        cluster,
        TIMER_PATH,
        [
            "[Unit]",
            f"Description=piherd: the Pi's own signals every {interval_s} s",
            "",
            "[Timer]",
            "OnActiveSec=1s",
            "OnBootSec=10s",
            f"OnUnitActiveSec={interval_s}s",
            "AccuracySec=1s",
            "",
            "[Install]",
            "WantedBy=timers.target",
        ],
        restarts=restart,
    )
    body = "#!/bin/sh\n" + header(cluster) + SCRIPT
    script = FileSpec(SCRIPT_PATH, body.encode(), 0o755, restarts=restart)
    return [script, unit, timer]

/**
 * `free` for the built-in busybox image. busybox's own applet asks the kernel (sysinfo(2)), which
 * knows no cgroups and tells a sandbox the host's memory; this script reads /proc/meminfo instead,
 * which lxcfs answers with the lease's own figures (lxcfs.ts), and prints it as procps' `free` does.
 * Units: -b bytes, -k KiB (default), -m MiB, -g GiB.
 */
export const BUSYBOX_FREE = `#!/bin/sh
case "\${1:--k}" in
  -b) d=1 ;;
  -k) d=1024 ;;
  -m) d=1048576 ;;
  -g) d=1073741824 ;;
  *) echo "usage: free [-b|-k|-m|-g]" >&2; exit 1 ;;
esac
exec awk -v d="$d" '
  { v[$1] = $2 * 1024 }
  function n(x) { return int(x / d) }
  END {
    cache = v["Buffers:"] + v["Cached:"] + v["SReclaimable:"]
    used = v["MemTotal:"] - v["MemFree:"] - cache
    if (used < 0) used = 0
    printf "%-7s %11s %11s %11s %11s %11s %11s\\n", "", "total", "used", "free", "shared", "buff/cache", "available"
    printf "%-7s %11d %11d %11d %11d %11d %11d\\n", "Mem:", n(v["MemTotal:"]), n(used), n(v["MemFree:"]), n(v["Shmem:"]), n(cache), n(v["MemAvailable:"])
    printf "%-7s %11d %11d %11d\\n", "Swap:", n(v["SwapTotal:"]), n(v["SwapTotal:"] - v["SwapFree:"]), n(v["SwapFree:"])
  }' /proc/meminfo
`;

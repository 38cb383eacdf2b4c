// File sizes in words, as Django's filesizeformat writes them on the server-drawn pages (1 KB = 1024 bytes), so a
// size reads the same whichever side drew it.
window.SlimforgeSizes = Object.freeze({
  format(bytes) {
    if (bytes === null || bytes === undefined || Number.isNaN(Number(bytes))) return "—";
    const value = Number(bytes);
    if (Math.abs(value) < 1024) return `${value} byte${value === 1 ? "" : "s"}`;
    const units = ["KB", "MB", "GB", "TB", "PB"];
    let scaled = value, unit = -1;
    while (Math.abs(scaled) >= 1024 && unit < units.length - 1) { scaled /= 1024; unit += 1; }
    return `${scaled.toFixed(1)} ${units[unit]}`;
  },
});

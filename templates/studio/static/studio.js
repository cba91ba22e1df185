/* fw Studio: ask before destructive actions (forms with data-confirm), and keep relative
   times current (<time data-relative datetime=...>: "3 min ago", "in 2 h"; the exact time
   is their title), as fw's format_relative words them. */
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});

(function () {
  "use strict";
  var UNITS = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];

  function relative(delta) {
    var span = Math.abs(delta);
    if (span < 1) return "now";
    for (var i = 0; i < UNITS.length; i++) {
      if (span >= UNITS[i][1]) {
        var text = Math.floor(span / UNITS[i][1]) + " " + UNITS[i][0];
        return delta > 0 ? "in " + text : text + " ago";
      }
    }
    return "now";
  }

  function refresh() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var at = Date.parse(element.getAttribute("datetime")) / 1000;
      if (!isNaN(at)) element.textContent = relative(at - now);
    });
  }

  window.fwRelativeTimes = refresh;
  setInterval(refresh, 10000);
})();

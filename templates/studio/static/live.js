/* fw live status: while the page asks for it (an element with data-fw-poll="<ms>"), fetch
   the page again every tick and swap in the new content without reloading. Elements marked
   data-fw-live (matched by id) are swapped one by one; a page without them has its body
   swapped. A region the user is editing is left alone; open <details> stay open. Polling
   stops when a fetched page no longer asks for it. A page that sends an ETag is fetched
   with If-None-Match: an unchanged page answers 304, with nothing to render or swap. */
(function () {
  "use strict";
  if (window.fwLive) return;
  var state = (window.fwLive = { ticks: 0, stopped: false });
  var failures = 0;
  var marker = document.querySelector("[data-fw-etag]");
  var etag = marker ? marker.getAttribute("data-fw-etag") : null;

  function interval(doc) {
    var marker = doc.querySelector("[data-fw-poll]");
    var ms = marker ? parseInt(marker.getAttribute("data-fw-poll"), 10) : 0;
    return ms > 0 ? ms : 0;
  }

  function changed(control) {
    if (control.type === "hidden") return false;
    if (control.type === "checkbox" || control.type === "radio") {
      return control.checked !== control.defaultChecked;
    }
    if (control.tagName === "SELECT") {
      var initial = 0;
      for (var i = 0; i < control.options.length; i++) {
        if (control.options[i].defaultSelected) initial = i;
      }
      return control.options.length > 0 && control.selectedIndex !== initial;
    }
    return control.value !== control.defaultValue;
  }

  function editing(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var controls = region.querySelectorAll("input, textarea, select");
    for (var i = 0; i < controls.length; i++) if (changed(controls[i])) return true;
    return false;
  }

  function replace(old, fresh) {
    if (editing(old)) return;
    var copy = document.importNode(fresh, true);
    old.querySelectorAll("details[id]").forEach(function (details) {
      var twin = copy.querySelector("details[id='" + CSS.escape(details.id) + "']");
      if (twin) twin.open = details.open;
    });
    old.replaceWith(copy);
  }

  function swap(doc) {
    var regions = document.querySelectorAll("[data-fw-live]");
    if (regions.length) {
      regions.forEach(function (old) {
        var fresh = old.id ? doc.getElementById(old.id) : null;
        if (fresh) replace(old, fresh);
      });
    } else if (doc.body) {
      replace(document.body, doc.body);
    }
    if (doc.title) document.title = doc.title;
  }

  function schedule(ms) {
    if (ms > 0) {
      setTimeout(tick, ms);
    } else {
      state.stopped = true;
    }
  }

  function tick() {
    if (document.hidden) {
      document.addEventListener("visibilitychange", tick, { once: true });
      return;
    }
    state.ticks++;
    var headers = { "X-FW-Live": "1" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(window.location.href, {
      credentials: "same-origin",
      cache: "no-store",
      headers: headers,
    })
      .then(function (response) {
        if (response.redirected) return null;
        if (response.status === 304) return "";
        if (!response.ok) throw new Error("HTTP " + response.status);
        etag = response.headers.get("ETag");
        return response.text();
      })
      .then(function (text) {
        if (text === null) return schedule(0);
        failures = 0;
        if (text === "") {
          state.unchanged = (state.unchanged || 0) + 1;
          return schedule(interval(document));
        }
        var doc = new DOMParser().parseFromString(text, "text/html");
        swap(doc);
        schedule(interval(doc));
      })
      .catch(function () {
        failures++;
        schedule(Math.min(interval(document) * Math.pow(2, failures), 30000));
      });
  }

  schedule(interval(document));
})();

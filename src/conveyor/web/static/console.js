/* Conveyor console: live job pages and seed 004's upload flow. No framework, no eval.
 *
 * A job page follows /console/jobs/{id}/events (Server-Sent Events; the browser resends
 * Last-Event-ID when it reconnects, so nothing is missed). If the stream cannot be held
 * open, the page polls /console/jobs/{id}/state every two seconds instead. Pages work
 * without this script; it only keeps them current. */
(function () {
  "use strict";

  var POLL_MS = 2000;

  function $(root, selector) { return root.querySelector(selector); }

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      });
  }

  function followJob(head) {
    var bar = $(head, "#job-progress");
    var live = $(head, "[data-field=live]");
    var source = null;
    var poller = null;
    var errors = 0;
    var lastDone = -1;

    function showProgress(p, status) {
      var done = p.total - p.pending;
      bar.value = p.percent;
      bar.textContent = p.percent + "%";
      $(head, "[data-field=percent]").textContent = p.percent + "%";
      var counts = done + "/" + p.total + " done";
      if (p.failed) { counts += ", " + p.failed + " failed"; }
      if (p.cancelled) { counts += ", " + p.cancelled + " cancelled"; }
      $(head, "[data-field=counts]").textContent = counts;
      if (status) {
        var badge = $(head, "[data-field=status]");
        badge.textContent = status;
        badge.className = "status status-" + status;
      }
      return done;
    }

    function refreshItem(itemId) {
      var current = document.getElementById("item-" + itemId);
      if (!current) { return; }
      fetchText(head.dataset.itemUrl + encodeURIComponent(itemId)).then(function (html) {
        var node = document.getElementById("item-" + itemId);
        if (node) { node.outerHTML = html; }
      }).catch(function () { /* the next event or poll brings it */ });
    }

    function refreshPage() {
      return fetchText(window.location.href).then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        ["items", "job-head"].forEach(function (id) {
          var fresh = page.getElementById(id);
          var old = document.getElementById(id);
          if (fresh && old) { old.replaceWith(fresh); }
        });
        var again = document.getElementById("job-head");
        if (again && again.dataset.active === "true" && again !== head) { followJob(again); }
      });
    }

    function finish() {
      if (source) { source.close(); source = null; }
      if (poller) { window.clearInterval(poller); poller = null; }
      live.textContent = "Finished.";
      refreshPage().catch(function () { live.textContent = "Finished; reload to see every result."; });
    }

    function poll() {
      fetch(head.dataset.state, { credentials: "same-origin" })
        .then(function (answer) { return answer.json(); })
        .then(function (state) {
          var done = showProgress(state.progress, state.status);
          if (state.finished) { finish(); return; }
          if (done !== lastDone) {
            if (lastDone >= 0) { refreshPage(); }
            lastDone = done;
          }
        })
        .catch(function () { live.textContent = "Connection lost; retrying."; });
    }

    function startPolling() {
      if (source) { source.close(); source = null; }
      if (poller) { return; }
      live.textContent = "Updating every 2 s.";
      poll();
      poller = window.setInterval(poll, POLL_MS);
    }

    if (!("EventSource" in window)) { startPolling(); return; }
    source = new EventSource(head.dataset.events);
    live.textContent = "Live.";
    source.addEventListener("open", function () { errors = 0; live.textContent = "Live."; });
    source.addEventListener("error", function () {
      errors += 1;
      if (!source || source.readyState === EventSource.CLOSED || errors >= 3) { startPolling(); }
    });
    function onProgress(event) {
      var data = JSON.parse(event.data);
      showProgress(data.progress || data, data.status);
    }
    source.addEventListener("job", onProgress);
    source.addEventListener("progress", onProgress);
    source.addEventListener("stage", function (event) {
      $(head, "[data-field=stage]").textContent = JSON.parse(event.data).stage || "";
    });
    ["item.completed", "item.failed", "item.cancelled"].forEach(function (name) {
      source.addEventListener(name, function (event) { refreshItem(JSON.parse(event.data).item_id); });
    });
    source.addEventListener("finished", function (event) {
      onProgress(event);
      finish();
    });
  }

  /* Seed 004's page flow: POST /process_single, then poll /single_progress/{id}. */
  var STEPS = ["uploading", "analyzing", "background", "final", "completed"];

  function seedUpload(form) {
    var panel = document.getElementById("photo-progress");
    var step = $(panel, "[data-photo=step]");
    var bar = $(panel, "[data-photo=bar]");
    var fault = $(panel, "[data-photo=error]");

    function show(name, url) {
      var img = $(panel, "[data-photo=" + name + "]");
      if (url && img.getAttribute("src") !== url) { img.src = url; img.hidden = false; }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      data.delete("csrf_token");
      panel.hidden = false;
      fault.textContent = "";
      step.textContent = "uploading";
      bar.value = 0;
      fetch("/process_single", { method: "POST", body: data, credentials: "same-origin" })
        .then(function (answer) {
          return answer.json().then(function (body) { return { ok: answer.ok, body: body }; });
        })
        .then(function (reply) {
          if (!reply.ok || !reply.body.processing_id) {
            throw new Error(reply.body.message || "the upload was refused");
          }
          var id = reply.body.processing_id;
          var timer = window.setInterval(function () {
            fetch("/single_progress/" + encodeURIComponent(id), { credentials: "same-origin" })
              .then(function (answer) { return answer.json(); })
              .then(function (status) {
                step.textContent = status.current_step;
                bar.value = Math.max(0, STEPS.indexOf(status.current_step));
                if (status.gpt_completed || status.background_processing) { show("original", status.original_image_url); }
                if (status.background_completed) { show("background", status.background_image_url); }
                if (status.status === "completed") {
                  window.clearInterval(timer);
                  show("original", status.original_image_url);
                  show("final", status.final_image_url);
                } else if (status.status === "error") {
                  window.clearInterval(timer);
                  fault.textContent = status.error || "processing failed";
                }
              })
              .catch(function () { /* keep polling: the next answer may come */ });
          }, POLL_MS);
        })
        .catch(function (error) { fault.textContent = error.message; });
    });
  }

  function start() {
    var head = document.getElementById("job-head");
    if (head && head.dataset.active === "true") { followJob(head); }
    var photo = document.getElementById("photo-form");
    if (photo && photo.dataset.seedApi === "on") { seedUpload(photo); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

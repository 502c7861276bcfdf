// Hubplane progressive enhancement. Every page works without this file; it only adds a live
// event feed, confirmation prompts and directory suggestions. Loaded with `defer`, no inline code.
"use strict";

(function () {
  function csrfToken() {
    const el = document.querySelector('input[name="csrf_token"]');
    return el ? el.value : "";
  }

  // <ul data-live-events data-limit="20">: prepends journal events as they arrive over SSE.
  function liveEvents(list) {
    if (!window.EventSource) return;
    const limit = parseInt(list.dataset.limit || "20", 10);
    const status = document.querySelector("[data-live-status]");
    const source = new EventSource("/api/v1/events/stream");
    source.onopen = function () { if (status) status.textContent = "live"; };
    source.onerror = function () { if (status) status.textContent = "reconnecting…"; };
    source.addEventListener("progress", function (msg) {
      let e;
      try { e = JSON.parse(msg.data); } catch (_) { return; }
      const li = document.createElement("li");
      li.className = "fresh";
      const type = document.createElement("span");
      type.className = "badge";
      type.textContent = e.event_type;
      const text = document.createElement("span");
      text.textContent = " " + e.summary + " — " + e.author;
      li.appendChild(type);
      li.appendChild(text);
      li.dataset.seq = e.seq;
      list.insertBefore(li, list.firstChild);
      while (list.children.length > limit) list.removeChild(list.lastChild);
    });
  }

  // <form data-confirm="Really?">: asks before sending.
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
      });
    });
  }

  // <input data-user-picker list="id">: fills the datalist from the directory as you type.
  function userPickers() {
    document.querySelectorAll("input[data-user-picker]").forEach(function (input) {
      const list = document.getElementById(input.getAttribute("list"));
      if (!list) return;
      let timer = null;
      input.addEventListener("input", function () {
        clearTimeout(timer);
        const prefix = input.value.trim();
        if (prefix.length < 1) return;
        timer = setTimeout(function () {
          fetch("/api/v1/directory/users?prefix=" + encodeURIComponent(prefix), {
            headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() },
            credentials: "same-origin",
          }).then(function (r) { return r.ok ? r.json() : { items: [] }; })
            .then(function (body) {
              list.replaceChildren();
              (body.items || []).forEach(function (u) {
                const o = document.createElement("option");
                o.value = u.uid;
                o.label = (u.display_name || u.uid) + (u.email ? " <" + u.email + ">" : "");
                list.appendChild(o);
              });
            }).catch(function () { /* suggestions are optional */ });
        }, 200);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-events]").forEach(liveEvents);
    confirmForms();
    userPickers();
  });
})();

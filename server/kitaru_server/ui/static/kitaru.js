// Kitaru web UI: progressive enhancement of the server-rendered pages (no framework, no build step).
// Lists and execution pages refresh from /ui/fragments/*, logs and events stream from the API's
// server-sent event routes, and forms are checked here before anything is sent.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const enc = encodeURIComponent;

  // --- shared ----------------------------------------------------------------------------------

  async function request(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const csrf = $('meta[name="kitaru-csrf"]');
    if (method !== "GET" && csrf && csrf.content) headers["X-Kitaru-CSRF"] = csrf.content;
    const response = await fetch(url, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401 && !url.includes("/login")) {
      location.assign(`/login?next=${enc(location.pathname + location.search)}`);
    }
    if (!response.ok) {
      const error = new Error((data && data.message) || `The server answered ${response.status}; try again.`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function relative(date) {
    const seconds = (Date.now() - date.getTime()) / 1000;
    if (seconds < 0) return date.toLocaleString();
    if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return date.toLocaleString();
  }

  function localizeTimes(root = document) {
    for (const node of $$("time[datetime]", root)) {
      const date = new Date(node.dateTime);
      if (!node.dateTime || Number.isNaN(date.getTime())) continue;
      node.title = date.toString();
      node.textContent = node.hasAttribute("data-relative") ? relative(date) : date.toLocaleString();
    }
  }

  function clock(seconds) {
    const date = new Date(seconds * 1000);
    const pad = (n, width = 2) => String(n).padStart(width, "0");
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }

  function setBusy(button, busy) {
    if (!button) return;
    button.classList.toggle("busy", busy);
    button.disabled = busy || button.dataset.wasDisabled === "true";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = false;
  }

  // --- executions list -------------------------------------------------------------------------

  function initExecutions() {
    const table = $("#executions-table");
    const toggle = $("#live-toggle");
    let timer = null;
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const data = await request("GET", table.dataset.fragment);
        $("#execution-rows").innerHTML = data.rows;
        $("#status-counts").innerHTML = data.counts;
        localizeTimes(table);
      } catch (_) { /* keep the rows shown; the next tick retries */ }
    };
    const setLive = (on) => {
      document.body.classList.toggle("live-on", on);
      clearInterval(timer);
      if (on) timer = setInterval(refresh, 2000);
    };
    toggle.addEventListener("change", () => setLive(toggle.checked));
    setLive(toggle.checked);
    $("#filter-status").addEventListener("change", () => $("#filters").requestSubmit());
  }

  // --- wait forms: read and check the fields, build the value ----------------------------------

  function setFieldError(input, message) {
    input.classList.toggle("invalid", Boolean(message));
    input.setAttribute("aria-invalid", message ? "true" : "false");
    const box = input.closest(".field") && $(".field-error", input.closest(".field"));
    if (box) box.textContent = message || "";
  }

  function setPath(target, path, value) {
    let node = target;
    path.slice(0, -1).forEach((key) => {
      if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
      node = node[key];
    });
    node[path[path.length - 1]] = value;
  }

  function readField(input, form) {
    const kind = input.dataset.kind;
    const raw = typeof input.value === "string" ? input.value : "";
    if (kind === "boolean") return { present: true, value: input.checked };
    if (kind === "boolean-radio") {
      const checked = $$("input[type=radio]", form).find((r) => r.name === input.name && r.checked);
      if (!checked) return { present: false, error: input.required ? "Choose yes or no." : null };
      return { present: true, value: JSON.parse(checked.value) };
    }
    if (kind === "enum") {
      if (raw === "") return { present: false, error: input.required ? "Choose a value." : null };
      return { present: true, value: JSON.parse(raw) };
    }
    if (kind === "integer" || kind === "number") {
      const text = raw.trim();
      if (text === "") {
        if (input.validity && input.validity.badInput) return { present: false, error: "Enter a number." };
        return { present: false, error: input.required ? "Enter a number." : null };
      }
      const value = Number(text);
      if (!Number.isFinite(value)) return { present: false, error: "Enter a number." };
      if (kind === "integer" && !Number.isInteger(value)) return { present: false, error: "Enter a whole number." };
      if (input.min !== "" && value < Number(input.min)) return { present: false, error: `Enter at least ${input.min}.` };
      if (input.max !== "" && value > Number(input.max)) return { present: false, error: `Enter at most ${input.max}.` };
      const above = input.dataset.exclusiveminimum;
      const below = input.dataset.exclusivemaximum;
      if (above !== undefined && !(value > Number(above))) return { present: false, error: `Enter more than ${above}.` };
      if (below !== undefined && !(value < Number(below))) return { present: false, error: `Enter less than ${below}.` };
      return { present: true, value };
    }
    if (kind === "string") {
      if (raw === "") return { present: false, error: input.required ? "This field is required." : null };
      const min = input.getAttribute("minlength");
      if (min && [...raw].length < Number(min)) return { present: false, error: `Enter at least ${min} characters.` };
      const pattern = input.dataset.pattern;
      if (pattern) {
        let matches = true;
        try { matches = new RegExp(pattern, "u").test(raw); } catch (_) { /* the server checks patterns the browser cannot */ }
        if (!matches) return { present: false, error: `Must match the pattern ${pattern}.` };
      }
      return { present: true, value: raw };
    }
    // json
    const text = raw.trim();
    if (text === "") return { present: false, error: input.required ? "Enter a JSON value." : null };
    try {
      return { present: true, value: JSON.parse(text) };
    } catch (error) {
      return { present: false, error: `This is not valid JSON (${error.message}).` };
    }
  }

  function readWaitForm(form) {
    const topObject = $$("fieldset[data-kind=object]", form).some((f) => JSON.parse(f.dataset.path).length === 0);
    let root = topObject ? {} : undefined;
    let firstInvalid = null;
    const seenRadios = new Set();
    for (const input of $$("input[data-kind], select[data-kind], textarea[data-kind]", form)) {
      if (input.dataset.kind === "boolean-radio") {
        if (seenRadios.has(input.name)) continue;
        seenRadios.add(input.name);
      }
      const result = readField(input, form);
      setFieldError(input, result.error);
      if (result.error) {
        firstInvalid = firstInvalid || input;
        continue;
      }
      if (!result.present) continue;
      const path = JSON.parse(input.dataset.path);
      if (path.length === 0) root = result.value;
      else {
        if (root === undefined) root = {};
        setPath(root, path, result.value);
      }
    }
    return { firstInvalid, value: root };
  }

  // --- execution page --------------------------------------------------------------------------

  function initExecution() {
    const execId = document.body.dataset.execId;
    const base = `/ui/fragments/executions/${enc(execId)}`;
    const api = `/api/v1/executions/${enc(execId)}`;
    const last = {};
    let active = document.body.dataset.active === "true";
    let selected = null;
    let selectedSignature = null;
    let callSignatures = {};
    let timer = null;

    // tabs
    for (const tab of $$(".tab")) {
      tab.addEventListener("click", () => {
        for (const other of $$(".tab", tab.closest(".tabs"))) other.setAttribute("aria-selected", String(other === tab));
        for (const panel of $$(".tab-panel", tab.closest(".card"))) panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      });
    }

    const message = (text, kind) => {
      const box = $("#action-message");
      box.hidden = !text;
      box.className = `alert ${kind === "error" ? "alert-error" : "alert-ok"}`;
      box.textContent = text || "";
    };

    const highlight = () => {
      for (const node of $$("[data-call]")) {
        if (node.classList.contains("call-link")) continue;
        node.classList.toggle("selected", node.dataset.call === selected);
      }
    };

    async function select(invocation, { refreshOnly = false } = {}) {
      selected = invocation;
      if (!refreshOnly) history.replaceState(null, "", `#call=${enc(invocation)}`);
      highlight();
      const panel = $("#call-panel");
      try {
        const data = await request("GET", `${base}/calls/${enc(invocation)}`);
        if (refreshOnly && panel.contains(document.activeElement) && document.activeElement.closest("form")) return;
        panel.innerHTML = data.html;
        selectedSignature = callSignatures[invocation];
        localizeTimes(panel);
        bindReplay(panel);
      } catch (error) {
        panel.replaceChildren(element("div", "empty", error.message));
      }
    }

    // live refresh of the page's regions
    const scrollers = (region) => $$(".dag-wrap, .timeline", region).map((node) => [node.className, node.scrollLeft, node.scrollTop]);
    async function refresh() {
      const data = await request("GET", base);
      for (const [name, html] of Object.entries(data.regions)) {
        const region = $(`#region-${name}`);
        if (!region || last[name] === html) continue;
        const kept = scrollers(region);
        region.innerHTML = html;
        last[name] = html;
        for (const [className, left, top] of kept) {
          const node = region.getElementsByClassName(className.split(" ")[0])[0];
          if (node) { node.scrollLeft = left; node.scrollTop = top; }
        }
        localizeTimes(region);
      }
      const waits = $("#region-waits");
      if (waits.dataset.key !== data.waits_key) {
        waits.dataset.key = data.waits_key;
        waits.innerHTML = data.waits;
        localizeTimes(waits);
        bindWaits();
      }
      callSignatures = data.calls;
      addLogFilterOptions(Object.keys(data.calls));
      highlight();
      if (selected && callSignatures[selected] !== selectedSignature) select(selected, { refreshOnly: true });
      const wasActive = active;
      active = data.active;
      document.body.dataset.active = String(active);
      if (active && !wasActive) streams.reopen();
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        if (!document.hidden) {
          try { await refresh(); } catch (_) { /* the next tick retries */ }
        }
        schedule();
      }, active ? 1500 : 6000);
    }

    // actions
    const done = {
      cancel: () => "The execution is cancelled; resume it to continue from its last committed call.",
      resume: (data) => `Resumed in a detached driver (pid ${data.pid}).`,
      retry: (data) => `Retrying in a detached driver (pid ${data.pid}).`,
    };
    async function runAction(button) {
      const action = button.dataset.action;
      button.dataset.wasDisabled = "false";
      setBusy(button, true);
      message(action === "cancel" ? "Cancelling…" : "Starting a driver process…", "ok");
      try {
        const data = await request("POST", `/ui/actions/executions/${enc(execId)}/${action}`, {});
        message(done[action](data), "ok");
        active = action !== "cancel";
        await refresh();
        streams.reopen();
      } catch (error) {
        message(error.message, "error");
      } finally {
        setBusy(button, false);
      }
    }

    // wait forms
    function bindWaits() {
      for (const form of $$(".wait-form")) {
        if (form.dataset.bound) continue;
        form.dataset.bound = "true";
        form.addEventListener("input", (event) => {
          if (event.target.dataset && event.target.dataset.kind) setFieldError(event.target, null);
          $(".form-error", form).hidden = true;
        });
        form.addEventListener("submit", async (event) => {
          event.preventDefault();
          const errorBox = $(".form-error", form);
          errorBox.hidden = true;
          const { firstInvalid, value } = readWaitForm(form);
          if (firstInvalid) {
            firstInvalid.focus();
            return;
          }
          const button = $("button[type=submit]", form);
          setBusy(button, true);
          try {
            const url = `/ui/actions/executions/${enc(execId)}/waits/${enc(form.dataset.wait)}/input`;
            const data = await request("POST", url, { value: value === undefined ? null : value });
            message(data.resumed ? `Input sent; the execution resumed in a detached driver (pid ${data.pid}).` : "Input sent.", "ok");
            active = true;
            await refresh();
            streams.reopen();
          } catch (error) {
            showError(errorBox, error.message);
          } finally {
            setBusy(button, false);
          }
        });
      }
    }

    // replay from a call
    function parseJsonField(field, what) {
      try {
        setFieldError(field, null);
        return JSON.parse(field.value);
      } catch (error) {
        field.classList.add("invalid");
        throw new Error(`${what} is not valid JSON (${error.message}).`);
      }
    }

    function bindReplay(panel) {
      const form = $(".replay-form", panel);
      if (!form) return;
      const box = form.elements.override_output;
      box.addEventListener("change", () => { form.elements.output.disabled = !box.checked; });
      form.addEventListener("input", () => { $(".form-error", form).hidden = true; });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const errorBox = $(".form-error", form);
        errorBox.hidden = true;
        const body = { at: form.dataset.at, override_output: box.checked };
        try {
          if (box.checked) body.output = parseJsonField(form.elements.output, "The output override");
          const overrides = form.elements.flow_overrides;
          if (overrides.value.trim()) {
            const value = parseJsonField(overrides, "The flow argument overrides");
            if (value === null || typeof value !== "object" || Array.isArray(value)) {
              overrides.classList.add("invalid");
              throw new Error('The flow argument overrides must be a JSON object, like {"topic": "ray"}.');
            }
            body.flow_overrides = value;
          }
        } catch (error) {
          showError(errorBox, error.message);
          return;
        }
        const button = $("button[type=submit]", form);
        setBusy(button, true);
        try {
          const data = await request("POST", `/ui/actions/executions/${enc(execId)}/replay`, body);
          location.assign(data.url);
        } catch (error) {
          showError(errorBox, error.message);
          setBusy(button, false);
        }
      });
    }

    // logs and events (server-sent events from the API)
    const filter = $("#log-filter");
    const follow = $("#log-follow");
    function addLogFilterOptions(invocations) {
      const known = new Set($$("option", filter).map((o) => o.value));
      for (const invocation of invocations) {
        if (!known.has(invocation)) filter.append(new Option(invocation, invocation));
      }
    }
    const visible = (line) => !filter.value || line.dataset.source === filter.value || line.dataset.invocation === filter.value;
    filter.addEventListener("change", () => {
      for (const line of $$(".log-line", $("#logs"))) line.hidden = !visible(line);
    });

    function logLine(row) {
      const line = element("div", `log-line log-${row.level}`);
      line.dataset.source = row.source;
      line.dataset.invocation = row.invocation_id || "";
      const where = (row.invocation_id || "flow") + (row.attempt > 1 ? ` #${row.attempt}` : "");
      line.append(element("span", "log-time", clock(row.timestamp)), element("span", "log-where", where),
        element("span", "log-level", row.level), element("span", "log-msg", row.message));
      line.hidden = !visible(line);
      return line;
    }

    function eventLine(row) {
      const line = element("div", "log-line");
      const payload = row.payload && Object.keys(row.payload).length ? JSON.stringify(row.payload) : "";
      line.append(element("span", "log-time", clock(row.timestamp)), element("span", "log-where", row.invocation_id || "flow"),
        element("span", "log-level", ""), element("span", "log-msg", `${row.kind} ${payload}`));
      return line;
    }

    const streams = (() => {
      const state = { logs: { last: 0, source: null, count: 0 }, events: { last: 0, source: null, count: 0 } };
      const stateText = $("#stream-state");
      function open(kind) {
        const entry = state[kind];
        if (entry.source) return;
        const view = $(`#${kind}`);
        const source = new EventSource(`${api}/${kind}/stream?after_id=${entry.last}`);
        entry.source = source;
        stateText.textContent = "live";
        source.addEventListener(kind === "logs" ? "log" : "event", (event) => {
          const row = JSON.parse(event.data);
          if (row.id <= entry.last) return;
          entry.last = row.id;
          entry.count += 1;
          $(".log-empty", view)?.remove();
          view.append(kind === "logs" ? logLine(row) : eventLine(row));
          if (follow.checked) view.scrollTop = view.scrollHeight;
        });
        source.addEventListener("end", () => {
          source.close();
          entry.source = null;
          const empty = $(".log-empty", view);
          if (empty) empty.textContent = kind === "logs" ? "No log output." : "No events.";
          if (!state.logs.source && !state.events.source) stateText.textContent = "the execution has ended";
        });
        source.addEventListener("error", () => {
          if (source.readyState === EventSource.CLOSED) {
            entry.source = null;
            stateText.textContent = "disconnected; reload the page to reconnect";
          } else stateText.textContent = "reconnecting…";
        });
      }
      return {
        open: () => { open("logs"); open("events"); },
        reopen: () => { open("logs"); open("events"); },
      };
    })();

    // clicks: select calls, run actions, copy ids, filter logs
    document.addEventListener("click", (event) => {
      const action = event.target.closest("button[data-action]");
      if (action) { runAction(action); return; }
      const copy = event.target.closest("[data-copy]");
      if (copy) {
        navigator.clipboard?.writeText(copy.dataset.copy).then(() => { copy.textContent = "copied"; setTimeout(() => { copy.textContent = "copy"; }, 1200); });
        return;
      }
      const logs = event.target.closest("[data-log-filter]");
      if (logs) {
        addLogFilterOptions([logs.dataset.logFilter]);
        filter.value = logs.dataset.logFilter;
        filter.dispatchEvent(new Event("change"));
        $("#tab-logs").click();
        $("#streams").scrollIntoView({ behavior: "smooth" });
        return;
      }
      const call = event.target.closest("[data-call]");
      if (call && !event.metaKey && !event.ctrlKey) {
        event.preventDefault();
        select(call.dataset.call);
      }
    });
    document.addEventListener("keydown", (event) => {
      const row = event.target.closest && event.target.closest("tr[data-call]");
      if (row && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        select(row.dataset.call);
      }
    });

    bindWaits();
    streams.open();
    const fromHash = decodeURIComponent((location.hash.match(/^#call=(.+)$/) || [])[1] || "");
    const failed = $("#failure [data-call]");
    if (fromHash) select(fromHash, { refreshOnly: true });
    else if (failed) select(failed.dataset.call, { refreshOnly: true });
    refresh().catch(() => {}).finally(schedule);
  }

  document.addEventListener("DOMContentLoaded", () => {
    localizeTimes();
    const page = document.body.dataset.page;
    if (page === "executions") initExecutions();
    if (page === "execution") initExecution();
  });
})();

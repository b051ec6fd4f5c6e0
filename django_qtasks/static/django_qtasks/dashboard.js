// The task dashboard: draws the data embedded in the page, then polls the
// JSON endpoint. No library: the chart is plain SVG, coloured by admin.css
// (which follows the admin's light and dark themes).
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const STATUSES = ["success", "error", "cancel"];
  let labels = {};

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => node.appendChild(child));
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, value));
    return node;
  }

  function time(iso, withDate) {
    if (!iso) return "–";
    const date = new Date(iso);
    const options = {hour: "2-digit", minute: "2-digit"};
    if (withDate) Object.assign(options, {month: "short", day: "numeric"});
    return date.toLocaleString(undefined, options);
  }

  function since(iso, now) {
    if (!iso) return "–";
    const seconds = Math.max(0, Math.round((now - new Date(iso)) / 1000));
    if (seconds < 120) return format(labels.secondsAgo, {count: seconds});
    if (seconds < 7200) return format(labels.minutesAgo, {count: Math.floor(seconds / 60)});
    return format(labels.hoursAgo, {count: Math.floor(seconds / 3600)});
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 0) + " ms";
    return value.toFixed(value < 60 ? 2 : 0) + " s";
  }

  function percent(fraction) {
    return (fraction * 100).toFixed(fraction && fraction < 0.01 ? 2 : 1) + " %";
  }

  function taskLink(task) {
    const text = (task.task_name || "?") + " " + task.uuid.slice(0, 8);
    return el("a", {href: task.url, text: text});
  }

  function fillRows(table, rows, empty, columns) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const cell = el("td", {colspan: columns, class: "qtasks-quiet", text: empty});
      body.appendChild(el("tr", {}, [cell]));
    }
    rows.forEach((cells) => body.appendChild(el("tr", {}, cells.map((c) => (
      c instanceof Node ? el("td", {}, [c]) : el("td", {text: String(c)}))))));
  }

  function drawChart(chart, series, period) {
    const width = 960, height = 240, left = 44, bottom = 26, top = 10;
    const buckets = series.buckets;
    const totals = buckets.map((b) => STATUSES.reduce((sum, s) => sum + b[s], 0));
    const peak = Math.max(1, ...totals);
    const magnitude = Math.pow(10, Math.floor(Math.log10(peak)));
    const max = [1, 2, 2.5, 5, 10, 20].map((f) => f * magnitude).find((v) => v >= peak * 1.15);
    const plot = height - bottom - top;
    const slot = (width - left) / buckets.length;
    chart.replaceChildren();
    [0, 0.5, 1].forEach((f) => {
      const y = top + plot - f * plot;
      chart.appendChild(svg("line", {x1: left, x2: width, y1: y, y2: y, class: "qtasks-grid"}));
      const label = svg("text", {x: left - 6, y: y + 4, class: "qtasks-axis", "text-anchor": "end"});
      label.textContent = String(Math.round(max * f * 10) / 10);
      chart.appendChild(label);
    });
    const every = Math.ceil(buckets.length / 8);
    buckets.forEach((bucket, i) => {
      const x = left + i * slot;
      const group = svg("g", {class: "qtasks-bar"});
      const title = svg("title", {});
      title.textContent = format(labels.chartTitle, {time: time(bucket.t, period !== "1h"),
        success: bucket.success, error: bucket.error, cancel: bucket.cancel});
      group.appendChild(title);
      group.appendChild(svg("rect", {x: x, y: top, width: slot, height: plot, class: "qtasks-hit"}));
      let y = top + plot;
      STATUSES.forEach((status) => {
        const h = (bucket[status] / max) * plot;
        if (h > 0) {
          y -= h;
          group.appendChild(svg("rect", {x: x + slot * 0.1, y: y, width: slot * 0.8,
            height: h, class: "qtasks-fill-" + status}));
        }
      });
      chart.appendChild(group);
      if (i % every === 0) {
        const label = svg("text", {x: x + slot / 2, y: height - 8, class: "qtasks-axis",
          "text-anchor": "middle"});
        label.textContent = time(bucket.t, period === "7d");
        chart.appendChild(label);
      }
    });
  }

  function render(root, data) {
    const now = new Date(data.generated_at);
    root.querySelectorAll("[data-count]").forEach((node) => {
      node.textContent = (data.counts[node.dataset.count] || 0).toLocaleString();
    });
    drawChart(document.getElementById("qtasks-chart"), data.series, data.period);
    const changelist = root.dataset.changelist;
    fillRows(document.getElementById("qtasks-queues"), data.queues.map((q) => [
      el("a", {href: changelist + "?queue=" + encodeURIComponent(q.queue), text: q.queue}),
      q.waiting.toLocaleString(), q.running.toLocaleString(), since(q.oldest_waiting, now),
    ]), labels.noQueues, 4);
    fillRows(document.getElementById("qtasks-failures"), data.failures.map((f) => [
      taskLink(f), time(f.finished_at, true), el("code", {text: f.error}),
    ]), labels.noFailures, 3);
    fillRows(document.getElementById("qtasks-costs"), data.costs.map((c) => [
      el("a", {href: changelist + "?task_name=" + encodeURIComponent(c.task_name),
        text: c.task_name}),
      c.runs.toLocaleString(), percent(c.failure_rate), c.retries.toLocaleString(),
      seconds(c.run_time_p50), seconds(c.run_time_p95), seconds(c.cpu_time_total),
      seconds(c.cpu_time_mean),
    ]), labels.noCosts, 8);
    fillRows(document.getElementById("qtasks-workers"), data.workers.map((w) => {
      const state = el("span", {class: "qtasks-badge qtasks-status-" + (w.alive ? "success" : "error"),
        text: w.alive ? labels.alive : labels.silent});
      const beat = el("span", {}, [state, document.createTextNode(" " + since(w.last_heartbeat, now))]);
      const running = w.running.length ? el("span", {}, w.running.flatMap((t, i) => (
        i ? [document.createTextNode(", "), taskLink(t)] : [taskLink(t)]))) : labels.idle;
      const process = format(w.supervisor ? labels.child : labels.process,
        {pid: w.pid, supervisor: w.supervisor});
      const name = el("span", {}, [el("code", {text: w.id}), el("br"),
        el("small", {class: "qtasks-process", text: process})]);
      return [name, w.queues.join(", "), w.running.length + "/" + w.concurrency,
        beat, running];
    }), labels.noWorkers, 5);
    document.getElementById("qtasks-updated").textContent =
      format(labels.updated, {time: now.toLocaleTimeString()});
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.querySelector(".qtasks-dashboard");
    labels = JSON.parse(document.getElementById("qtasks-labels").textContent);
    render(root, JSON.parse(document.getElementById("qtasks-data").textContent));
    const toggle = document.getElementById("qtasks-autorefresh");
    const seconds = parseFloat(root.dataset.refresh) || 5;
    async function refresh() {
      if (toggle.checked && document.visibilityState === "visible") {
        try {
          const response = await fetch(root.dataset.url, {credentials: "same-origin",
            headers: {Accept: "application/json"}});
          if (!response.ok) throw new Error(response.status + " " + response.statusText);
          render(root, await response.json());
        } catch (error) {
          document.getElementById("qtasks-updated").textContent =
            format(labels.updateFailed, {error: error.message});
        }
      }
      window.setTimeout(refresh, seconds * 1000);
    }
    window.setTimeout(refresh, seconds * 1000);
  });
})();

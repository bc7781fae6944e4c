"use strict";
// Sort (click a header), filter (substring, any column) and page the report tables. Rows come from the
// JSON block of each table; cells are built with createTextNode/textContent only, so data never becomes markup.
(function () {
  function flat(c) {
    if (c == null) return "";
    if (typeof c === "string") return c;
    return c.map(function (s) { return typeof s[1] === "string" ? s[1] : flat(s[1]); }).join("");
  }
  // The same rules as fpprov.report_text.number: integers with separators, at most d decimals, 1.50e-7 style.
  function fmt(v, d) {
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString("en-US");
    if (!isFinite(v)) return String(v);
    if (Math.abs(v) < Math.pow(10, -d) || Math.abs(v) >= 1e9) return v.toExponential(Math.max(d - 2, 1));
    return v.toLocaleString("en-US", { maximumFractionDigits: d });
  }
  function shown(type, c) {
    if (c == null) return "";
    return type === "num" ? (Array.isArray(c) ? c[1] : String(c)) : type === "id" ? String(c) : type === "link" ? flat(c[1]) : flat(c);
  }
  function num(c) {
    var v = Array.isArray(c) ? c[0] : c;
    return v == null ? -Infinity : v;
  }
  function segs(el, c) {
    if (typeof c === "string") { el.appendChild(document.createTextNode(c)); return; }
    c.forEach(function (s) {
      if (s[0] === "t") { el.appendChild(document.createTextNode(s[1])); return; }
      var span = document.createElement(s[0] === "m" ? "mark" : "span");
      if (s[0] === "m") { segs(span, s[1]); } else { span.className = s[0] === "s" ? "sp" : "esc"; span.textContent = s[1]; }
      el.appendChild(span);
    });
  }
  function fill(td, type, c, d) {
    if (c == null) return;
    if (type === "num") { td.className = "num" + (Array.isArray(c) && c.length > 2 && c[2] ? " " + c[2] : ""); td.textContent = Array.isArray(c) ? c[1] : fmt(c, d); return; }
    if (type === "id") { td.className = "num"; td.textContent = String(c); return; }
    if (type === "link") {
      var a = document.createElement("a"); a.setAttribute("href", c[0]);
      if (c.length > 2) a.setAttribute("data-filter", c[2]);
      segs(a, c[1]); td.appendChild(a); return;
    }
    td.className = type;
    segs(td, c);
  }
  document.querySelectorAll("div.dt").forEach(function (box) {
    var blob = box.querySelector("script[type='application/json']");
    if (!blob) return;
    var spec = JSON.parse(blob.textContent);
    var types = spec.types, digits = spec.digits, rows = spec.rows, size = spec.pageSize, page = 0, sortCol = -1, asc = true;
    var haystack = null;   // lower-cased row texts, built on the first filter (keeps big pages quick to open)
    var view = rows.map(function (_, i) { return i; });
    var tbody = box.querySelector("tbody"), info = box.querySelector(".dt-info");
    var bar = document.createElement("div"), filter = document.createElement("input");
    var prev = document.createElement("button"), next = document.createElement("button");
    bar.className = "dt-controls"; filter.type = "search"; filter.placeholder = "filter rows";
    filter.setAttribute("aria-label", "filter rows"); prev.textContent = "\u2190 previous"; next.textContent = "next \u2192";
    bar.appendChild(filter); bar.appendChild(prev); bar.appendChild(next); bar.appendChild(info);
    box.insertBefore(bar, box.firstChild);
    function render() {
      var pages = Math.max(1, Math.ceil(view.length / size));
      page = Math.max(0, Math.min(page, pages - 1));
      tbody.textContent = "";
      view.slice(page * size, (page + 1) * size).forEach(function (ri) {
        var tr = document.createElement("tr");
        rows[ri].forEach(function (c, i) { var td = document.createElement("td"); fill(td, types[i], c, digits[i]); tr.appendChild(td); });
        tbody.appendChild(tr);
      });
      info.textContent = view.length + " of " + rows.length + " rows, page " + (page + 1) + " of " + pages;
      prev.disabled = page === 0; next.disabled = page >= pages - 1;
    }
    function sort() {
      if (sortCol < 0) return;
      var t = types[sortCol], dir = asc ? 1 : -1;
      view.sort(function (a, b) {
        var x = rows[a][sortCol], y = rows[b][sortCol];
        if (t === "num" || t === "id") { x = num(x); y = num(y); }
        else { x = shown(t, x).toLowerCase(); y = shown(t, y).toLowerCase(); }
        return x < y ? -dir : x > y ? dir : a - b;
      });
    }
    var idCol = types.indexOf("id");
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      if (haystack === null) {
        haystack = rows.map(function (r) { return r.map(function (c, i) { return shown(types[i], c); }).join("\u0001").toLowerCase(); });
      }
      view = [];
      // "id=123": the rows of that id only (a link from another table), not every row that contains 123
      var exact = /^id=(\d+)$/.exec(q.trim());
      haystack.forEach(function (h, i) {
        if (exact ? idCol >= 0 && String(rows[i][idCol]) === exact[1] : h.indexOf(q) >= 0) view.push(i);
      });
      sort(); page = 0; render();
    });
    prev.addEventListener("click", function () { page -= 1; render(); });
    next.addEventListener("click", function () { page += 1; render(); });
    box.querySelectorAll("th").forEach(function (th, col) {
      th.title = "sort"; th.className += " sortable";
      th.addEventListener("click", function () {
        asc = sortCol === col ? !asc : types[col] !== "num";
        sortCol = col; sort(); page = 0; render();
        box.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      });
    });
    render();
  });
  // A link with data-filter (e.g. an FP's snippets) filters the table it points at before the page scrolls there.
  document.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("a[data-filter]") : null;
    if (!a) return;
    var box = document.getElementById((a.getAttribute("href") || "").slice(1));
    var input = box ? box.querySelector(".dt-controls input") : null;
    if (!input) return;
    input.value = a.getAttribute("data-filter");
    input.dispatchEvent(new Event("input"));
  });
  document.documentElement.setAttribute("data-tables-ready", "1");
})();

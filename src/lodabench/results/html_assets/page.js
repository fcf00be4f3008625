// lodabench results page: sort, filter, hover. Inline, no library, no network (the page's CSP forbids it).
(function () {
  "use strict";
  function cellValue(td) {
    var v = td.getAttribute("data-v");
    if (v === null) { v = td.textContent.trim(); }
    var n = parseFloat(v);
    return (v !== "" && isFinite(n) && /^[-+]?[\d.]/.test(v)) ? n : v.toLowerCase();
  }
  function compare(a, b) {
    var an = typeof a === "number", bn = typeof b === "number";
    if (an && bn) { return a - b; }
    if (an !== bn) { return an ? -1 : 1; }   // numbers before words (missing, ...) in ascending order
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  function sortBy(table, th) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var c = compare(cellValue(r1.cells[col]), cellValue(r2.cells[col]));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function applyFilters(box) {
    var table = document.getElementById(box.getAttribute("data-table"));
    var selects = box.querySelectorAll("select");
    var shown = 0, rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (r) {
      var ok = Array.prototype.every.call(selects, function (s) {
        return s.value === "" || r.getAttribute("data-" + s.name) === s.value;
      });
      r.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    var count = box.querySelector(".count");
    if (count) { count.textContent = shown + " of " + rows.length + " rows"; }
  }
  function openHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }
  function tooltip() {
    var tip = document.getElementById("tip");
    document.addEventListener("mouseover", function (e) {
      var m = e.target.closest ? e.target.closest(".mark") : null;
      if (!m) { return; }
      tip.textContent = m.getAttribute("data-tip");
      tip.hidden = false;
      var r = m.getBoundingClientRect();
      tip.style.left = (window.scrollX + r.right + 8) + "px";
      tip.style.top = (window.scrollY + r.top - 6) + "px";
    });
    document.addEventListener("mouseout", function (e) {
      if (e.target.closest && e.target.closest(".mark")) { tip.hidden = true; }
    });
    document.addEventListener("click", function (e) {
      var m = e.target.closest ? e.target.closest(".mark[data-run]") : null;
      if (m) { location.hash = m.getAttribute("data-run"); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable th"), function (th) {
      th.addEventListener("click", function () { sortBy(th.closest("table"), th); });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".filters"), function (box) {
      box.addEventListener("change", function () { applyFilters(box); });
      applyFilters(box);
    });
    window.addEventListener("hashchange", openHash);
    openHash();
    tooltip();
  });
}());

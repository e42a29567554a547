(function () {
  "use strict";
  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (!numeric) return v.toLowerCase();
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function sortBy(table, col, th) {
    var heads = table.tHead.rows[0].cells;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col, numeric), y = value(b, col, numeric);
      if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);  // missing values last
      var d = numeric ? x - y : x.localeCompare(y);
      return ascending ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  var tables = document.querySelectorAll("table.board");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });
  var search = document.getElementById("search");
  if (!search) return;
  // Words, not substrings: "reliable" must not find "unreliable". A row matches when each
  // word of the query starts a word of the row (so "mas" finds "masked" while typing).
  function words(text) {
    return text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  }
  function filter() {
    var query = words(search.value);
    Array.prototype.forEach.call(tables, function (table) {
      var rows = table.tBodies[0].rows, shown = 0;
      for (var i = 0; i < rows.length; i++) {
        var have = words(Array.prototype.map.call(rows[i].cells, function (c) { return c.textContent; }).join(" "));
        var hit = query.every(function (q) { return have.some(function (w) { return w.indexOf(q) === 0; }); });
        rows[i].hidden = !hit;
        if (hit) shown++;
      }
      var note = document.getElementById(table.id + "-shown");
      if (note) note.textContent = query.length ? shown + " of " + rows.length + " rows match" : "";
    });
  }
  search.addEventListener("input", filter);
  filter();
})();

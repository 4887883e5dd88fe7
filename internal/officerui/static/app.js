// TES officer dashboard: small progressive enhancements. Every page works
// without this file; it only adds a "select all" box and a count of the
// selected rows to the queue, and asks before a bulk decision.
(function () {
  "use strict";

  var all = document.getElementById("select-all");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.row-check"));
  var count = document.getElementById("selected-count");

  function update() {
    var n = boxes.filter(function (b) { return b.checked; }).length;
    if (count) {
      count.textContent = n === 0 ? "" : n + (n === 1 ? " row selected." : " rows selected.");
    }
    if (all) {
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
    boxes.forEach(function (b) {
      var tr = b.closest("tr");
      if (tr) { tr.classList.toggle("row-selected", b.checked); }
    });
  }

  if (all && boxes.length > 0) {
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", update); });
  update();

  var bulk = document.getElementById("bulk-form");
  if (bulk) {
    bulk.addEventListener("submit", function (ev) {
      var btn = ev.submitter;
      if (!btn || btn.name !== "action") { return; }
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (n === 0) {
        ev.preventDefault();
        if (count) { count.textContent = "Select at least one row first."; }
        return;
      }
      var verb = btn.value === "approve" ? "Approve" : "Reject";
      if (!window.confirm(verb + " " + n + (n === 1 ? " violation?" : " violations?"))) {
        ev.preventDefault();
      }
    });
  }
})();

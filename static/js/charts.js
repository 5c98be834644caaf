// Device page charts: the value under the pointer or finger (and under the arrow keys when a chart
// has focus), read from the points the server drew. Listeners sit on the document, so a chart the
// page replaces keeps working. Without JavaScript each point still has its tooltip (<title>).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function chartOf(target) {
    return target && target.closest ? target.closest("svg.chart-svg") : null;
  }

  function points(svg) {
    return svg.querySelectorAll(".chart-points circle");
  }

  function cursor(svg) {
    var line = svg.querySelector(".chart-cursor");
    if (!line) {
      line = document.createElementNS(SVG, "line");
      line.setAttribute("class", "chart-cursor");
      var dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("class", "chart-marker");
      dot.setAttribute("r", "4.5");
      svg.appendChild(line);
      svg.appendChild(dot);
    }
    return [line, svg.querySelector(".chart-marker")];
  }

  function show(svg, index) {
    var all = points(svg);
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, index));
    var point = all[index];
    var x = point.getAttribute("cx"), y = point.getAttribute("cy");
    var parts = cursor(svg);
    parts[0].setAttribute("x1", x);
    parts[0].setAttribute("x2", x);
    parts[0].setAttribute("y1", svg.getAttribute("data-plot-top"));
    parts[0].setAttribute("y2", svg.getAttribute("data-plot-bottom"));
    parts[1].setAttribute("cx", x);
    parts[1].setAttribute("cy", y);
    svg.classList.add("is-reading");
    svg.setAttribute("data-index", String(index));
    var readout = svg.parentNode.querySelector(".chart-readout");
    if (readout) readout.textContent = point.textContent;  // its <title>, the tooltip without JS
  }

  function nearest(svg, event) {
    var matrix = svg.getScreenCTM();
    if (!matrix) return -1;
    var at = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    var best = -1, distance = Infinity;
    points(svg).forEach(function (point, i) {
      var d = Math.abs(parseFloat(point.getAttribute("cx")) - at.x);
      if (d < distance) { distance = d; best = i; }
    });
    return best;
  }

  function follow(event) {
    var svg = chartOf(event.target);
    if (!svg) return;
    var index = nearest(svg, event);
    if (index >= 0) show(svg, index);
  }

  document.addEventListener("pointermove", follow);
  document.addEventListener("pointerdown", follow);
  document.addEventListener("keydown", function (event) {
    var svg = chartOf(event.target);
    if (!svg || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    var index = parseInt(svg.getAttribute("data-index") || "-1", 10);
    show(svg, index < 0 ? points(svg).length - 1 : index + (event.key === "ArrowRight" ? 1 : -1));
    event.preventDefault();
  });
})();

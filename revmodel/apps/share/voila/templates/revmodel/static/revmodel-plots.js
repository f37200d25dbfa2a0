/* Draws the apps' charts: every element of class revmodel-plotly holds its figure as
   Plotly JSON in data-figure (and the bundle it needs in data-bundle); plotly.js is
   loaded from this server once, beside the widgets, and each chart drawn when its element
   appears. This script is put in the page's head by the apps' template (not fetched). The basic bundle (scatter, bar, pie) serves most pages; the full one is
   loaded only for a chart that needs another trace type. */
(function () {
  "use strict";
  var me = document.currentScript;
  var urls = { basic: me.dataset.basic, full: me.dataset.full };
  var loading = {};

  function load(bundle) {
    if (bundle !== "full" && loading.full) {
      return loading.full;
    }
    if (!loading[bundle]) {
      loading[bundle] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = urls[bundle] || urls.full;
        s.async = true;
        s.onload = function () { resolve(window.Plotly); };
        s.onerror = reject;
        document.head.appendChild(s);
      });
    }
    return loading[bundle];
  }

  function whenShown(el, fn) {
    // A chart in a hidden tab has no width yet: drawn when it gets one.
    if (el.clientWidth) {
      fn();
      return;
    }
    var watch = new ResizeObserver(function () {
      if (el.clientWidth) {
        watch.disconnect();
        fn();
      }
    });
    watch.observe(el);
  }

  function draw(el) {
    if (el.dataset.drawn) {
      return;
    }
    el.dataset.drawn = "1";
    var spec = JSON.parse(el.dataset.figure);
    load(el.dataset.bundle).then(function (Plotly) {
      whenShown(el, function () {
        if (!el.isConnected) {
          return;
        }
        Plotly.newPlot(el, spec.data, spec.layout, spec.config).then(function () {
          // The chart follows its box's width (a window resized, a tab shown again).
          var width = el.clientWidth;
          new ResizeObserver(function () {
            if (el.isConnected && el.clientWidth && el.clientWidth !== width) {
              width = el.clientWidth;
              Plotly.Plots.resize(el);
            }
          }).observe(el);
        });
      });
    });
  }

  function visit(node, fn) {
    if (node.nodeType !== 1) {
      return;
    }
    if (node.classList.contains("revmodel-plotly")) {
      fn(node);
    }
    node.querySelectorAll(".revmodel-plotly").forEach(fn);
  }

  function purge(el) {
    if (el.dataset.drawn && window.Plotly && !el.isConnected) {
      window.Plotly.purge(el);
    }
  }

  new MutationObserver(function (records) {
    records.forEach(function (r) {
      r.addedNodes.forEach(function (n) { visit(n, draw); });
      r.removedNodes.forEach(function (n) { visit(n, purge); });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
  document.querySelectorAll(".revmodel-plotly").forEach(draw);
  // plotly.js's basic bundle is fetched at once: it runs while the page's other scripts are
  // still on their way (the browser otherwise idle), done before the load event on which
  // Voila starts its widgets. The full bundle (four times the size) is fetched once the page
  // has loaded, so that its run does not hold Voila's start back.
  var bundle = me.dataset.bundle;
  if (bundle !== "full" || document.readyState === "complete") {
    load(bundle);
  } else {
    window.addEventListener("load", function () { load(bundle); });
  }
})();

// A plotly chart that redraws in place: a new figure for the same chart goes through Plotly.react on the chart
// already on the page, instead of a new chart (for a 3D view, a new WebGL context) at every rerun of the page.
// data: {figure: the figure's JSON text, label: what the figure shows, src: URL of plotly.min.js, config: {...}}.
// The chart's div carries data-drawn=<label> once that figure is on screen (benchmarks and browser tests wait
// for it).

function loadPlotly(src) {
  if (!window.__calogenPlotly) {
    window.__calogenPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL(src, document.baseURI).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__calogenPlotly = undefined;
        reject(new Error("plotly.js could not be loaded from " + script.src));
      };
      document.head.appendChild(script);
    });
  }
  return window.__calogenPlotly;
}

export default function (component) {
  const { data, parentElement } = component;
  let div = parentElement.querySelector("div.calogen-live-chart");
  if (!div) {
    div = document.createElement("div");
    div.className = "calogen-live-chart";
    div.style.width = "100%";
    parentElement.appendChild(div);
  }
  div.dataset.wanted = data.label;
  const figure = JSON.parse(data.figure);
  loadPlotly(data.src)
    .then((Plotly) => Plotly.react(div, {
      data: figure.data, layout: figure.layout, frames: figure.frames || [], config: data.config,
    }))
    .then(() => {
      if (div.dataset.wanted === data.label) div.dataset.drawn = data.label;
    })
    .catch((error) => {
      div.textContent = "This chart could not be drawn: " + error.message;
    });
}

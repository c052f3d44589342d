// The explorer page: plain JS, talking only to the server it came from.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { generators: {}, palindromes: {}, pickB: false };

function showError(where, message) { $(where).textContent = message || ""; }

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let data;
  try { data = await response.json(); } catch (_) { data = {}; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

// Load an image URL into an <img>, reporting the server's one-line error instead of a broken picture.
async function loadImage(img, url, where) {
  const response = await fetch(url);
  if (!response.ok) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try { message = JSON.parse(text).error || message; } catch (_) { /* not our JSON: keep the status */ }
    showError(where, message);
    return false;
  }
  const old = img.src;
  img.src = URL.createObjectURL(await response.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  showError(where, "");
  return true;
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value; o.textContent = text ?? value;
  select.appendChild(o);
}

// ---- tabs ----
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
  });
}

// ---- GANs ----
function ganParams(extra) {
  const g = state.generators[$("generator").value];
  const p = new URLSearchParams({ generator: g.name, seed: $("seed").value || "0" });
  if (g.conditional && $("digit").value !== "mixed") p.set("digit", $("digit").value);
  if (g.clusters && $("cluster").value !== "own") p.set("cluster", $("cluster").value);
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p;
}

async function updateGrid() {
  if (!$("generator").value) return;
  const ok = await loadImage($("grid"), "/api/grid.png?" + ganParams(), "gan-error");
  $("download").href = "/api/grid.png?" + ganParams({ scale: 4, download: 1 });
  if (ok) await updateBetween();
}

let betweenBusy = false, betweenAgain = false;
async function updateBetween() {   // one request in flight; the slider's latest position wins
  if (betweenBusy) { betweenAgain = true; return; }
  betweenBusy = true;
  try {
    do {
      betweenAgain = false;
      const t = ($("slider").value / 100).toFixed(2);
      $("slider-value").textContent = t;
      await loadImage($("between"), "/api/between.png?" + ganParams({
        a: $("cell-a").value - 1, b: $("cell-b").value - 1, t: t, mode: $("mode").value }), "gan-error");
    } while (betweenAgain);
  } finally { betweenBusy = false; }
}

function showGenerator() {
  const g = state.generators[$("generator").value];
  $("digit-label").hidden = !g.conditional;
  $("cluster-label").hidden = !g.clusters;
  $("cluster").replaceChildren();
  option($("cluster"), "own", "from the noise");
  for (let k = 0; k < g.clusters; k++) option($("cluster"), k);
  $("generator-description").textContent = g.description || `${g.arch} generator`;
  const table = $("generator-metrics");
  table.replaceChildren();
  for (const [name, value] of Object.entries(g.metrics || {})) {
    if (typeof value === "object") continue;
    const row = table.insertRow();
    row.insertCell().textContent = name;
    row.insertCell().textContent = typeof value === "number" ? +value.toPrecision(4) : value;
  }
  if (!table.rows.length) table.insertRow().insertCell().textContent = "no metrics recorded";
  updateGrid();
}

$("grid").addEventListener("click", (event) => {   // which of the 5 x 5 cells was clicked
  const box = event.target.getBoundingClientRect();
  const col = Math.min(4, Math.floor((event.clientX - box.left) / box.width * 5));
  const row = Math.min(4, Math.floor((event.clientY - box.top) / box.height * 5));
  $(state.pickB ? "cell-b" : "cell-a").value = row * 5 + col + 1;
  state.pickB = !state.pickB;
  updateBetween();
});
$("generator").addEventListener("change", showGenerator);
for (const id of ["digit", "cluster", "seed"]) $(id).addEventListener("change", updateGrid);
for (const id of ["cell-a", "cell-b", "mode"]) $(id).addEventListener("change", updateBetween);
$("slider").addEventListener("input", updateBetween);
$("new-noise").addEventListener("click", () => {
  $("seed").value = Math.floor(Math.random() * 2147483647);
  updateGrid();
});

// ---- palindromes ----
function showPalindromeModel() {
  const m = state.palindromes[$("pmodel").value];
  $("length").max = m.max_length;
  $("length").value = m.trained_length;
  $("pmodel-info").textContent = `${m.model.toUpperCase()}, hidden ${m.num_hidden}, trained at T = ` +
    `${m.trained_length}; sequences up to ${m.max_length} digits.` +
    (m.inspectable ? "" : " (no memory picture for this kind of model)");
}

async function freshPalindrome() {
  try {
    const p = new URLSearchParams({ model: $("pmodel").value, length: $("length").value,
                                    seed: Math.floor(Math.random() * 2147483647) });
    const data = await getJSON("/api/palindrome/fresh?" + p);
    $("sequence").value = data.sequence;
    showError("palindrome-error", "");
    await predict();
  } catch (error) { showError("palindrome-error", error.message); }
}

function showProbabilities(probabilities, prediction) {
  const box = $("probabilities");
  box.replaceChildren();
  probabilities.forEach((p, digit) => {
    const bar = document.createElement("div");
    bar.className = "bar" + (digit === prediction ? " top" : "");
    const fill = document.createElement("span");
    fill.className = "fill"; fill.style.width = (p * 200).toFixed(1) + "px";
    bar.append(`${digit} `, fill, ` ${(100 * p).toFixed(1)}%`);
    box.appendChild(bar);
  });
}

async function predict() {
  const request = { method: "POST", headers: { "Content-Type": "application/json" },
                    body: JSON.stringify({ model: $("pmodel").value, sequence: $("sequence").value }) };
  try {
    const data = await getJSON("/api/palindrome/predict", request);
    showError("palindrome-error", "");
    const verdict = data.prediction === data.first_digit ? "the first digit" : `the first digit was ${data.first_digit}`;
    $("prediction").textContent = `T = ${data.length}: predicts ${data.prediction} (${verdict})`;
    showProbabilities(data.probabilities, data.prediction);
  } catch (error) {
    showError("palindrome-error", error.message);
    return;
  }
  if (!state.palindromes[$("pmodel").value].inspectable) return;
  $("memory-summary").textContent = "drawing the memory picture…";
  try {
    const data = await getJSON("/api/palindrome/inspect", request);
    $("memory").src = "data:image/png;base64," + data.png;
    $("memory-summary").textContent = `${data.units_carrying} of ${data.num_hidden} units carry the first ` +
      `digit at every step (R² ≥ 0.5 on ${data.held_out} held-out palindromes of this length); ` +
      `drawn: units ${data.carriers.join(", ")}.`;
  } catch (error) { $("memory-summary").textContent = error.message; }
}

$("pmodel").addEventListener("change", showPalindromeModel);
$("fresh").addEventListener("click", freshPalindrome);
$("predict").addEventListener("click", predict);

// ---- start ----
(async () => {
  const models = await getJSON("/api/models");
  for (const g of models.generators) { state.generators[g.name] = g; option($("generator"), g.name); }
  for (const m of models.palindromes) { state.palindromes[m.name] = m; option($("pmodel"), m.name); }
  option($("digit"), "mixed", "0-9 in turn");
  for (let d = 0; d < 10; d++) option($("digit"), d);
  const preferred = models.generators.find((g) => g.name === "pretrained:mnist");
  if (preferred) $("generator").value = preferred.name;
  if (models.generators.length) showGenerator();
  if (models.palindromes.length) showPalindromeModel();
})();

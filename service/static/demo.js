// The demo page: draw or upload a digit, send it to the public API, show the answer.
// Plain JavaScript, no libraries, nothing fetched from anywhere but this service.
"use strict";

(() => {
  const PREDICT_URL = "/predict_image?prepared=true";
  const DEBOUNCE_MS = 200; // while drawing: at most about five requests a second
  const MAX_WAIT_MS = 600;
  const TIMEOUT_MS = 15000; // then a readable message instead of a spinner forever
  const DIGITS = 10;

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ink = pad.getContext("2d");
  const preview = $("preview");
  const strokeWidth = $("stroke-width");
  const undoButton = $("undo");
  const statusBox = $("status");
  const errorBox = $("error");
  const labelBox = $("label");
  const confidenceBox = $("confidence");
  const bars = $("bars");
  const drop = $("drop");
  const fileInput = $("file");
  const photo = $("photo");

  // Strokes are kept as point lists so Undo can redraw all but the last one.
  const strokes = [];
  let current = null; // the stroke being drawn, while a pointer is down
  let timer = null; // the pending debounced prediction
  let inFlight = null; // {controller, seq} of the request under way
  let seq = 0; // answers older than the newest request are dropped

  // -- the bar chart, built once ---------------------------------------------------------
  const barRows = [];
  for (let digit = 0; digit < DIGITS; digit++) {
    const row = document.createElement("li");
    row.innerHTML =
      `<span class="digit">${digit}</span><span class="bar"><span></span></span>` +
      `<span class="pct">–</span>`;
    row.setAttribute("aria-label", `digit ${digit}: no prediction yet`);
    bars.append(row);
    barRows.push(row);
  }

  // -- busy state, visible to people and to tests ------------------------------------------
  function updateBusy() {
    const busy = timer !== null || inFlight !== null;
    document.body.dataset.busy = busy ? "true" : "false";
    statusBox.classList.toggle("busy", inFlight !== null);
  }

  function setStatus(text) {
    statusBox.textContent = text;
  }

  function answered(state) {
    // Counted so a reader (or a test) can tell a new answer from the one shown before.
    document.body.dataset.state = state;
    document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    answered("error");
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  // -- drawing -----------------------------------------------------------------------------
  function paintBackground() {
    ink.fillStyle = "#ffffff";
    ink.fillRect(0, 0, pad.width, pad.height);
  }

  function paintStroke(stroke) {
    ink.strokeStyle = "#000000";
    ink.fillStyle = "#000000";
    ink.lineWidth = stroke.width;
    ink.lineCap = "round";
    ink.lineJoin = "round";
    const [first, ...rest] = stroke.points;
    if (rest.length === 0) {
      ink.beginPath();
      ink.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
      ink.fill();
      return;
    }
    ink.beginPath();
    ink.moveTo(first[0], first[1]);
    for (const [x, y] of rest) ink.lineTo(x, y);
    ink.stroke();
  }

  function repaint() {
    paintBackground();
    for (const stroke of strokes) paintStroke(stroke);
    undoButton.disabled = strokes.length === 0;
  }

  function padPoint(event) {
    // The canvas may be shown smaller or larger than its 280x280 pixels (phone widths).
    const box = pad.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * pad.width) / box.width,
      ((event.clientY - box.top) * pad.height) / box.height,
    ];
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    photo.hidden = true; // the drawing, not the last upload, is what gets sent now
    // Widths are in canvas pixels, so a stroke is as thick on a phone as on a desktop.
    current = { width: Number(strokeWidth.value), points: [padPoint(event)], id: event.pointerId };
    strokes.push(current);
    repaint();
  });

  pad.addEventListener("pointermove", (event) => {
    if (current === null || event.pointerId !== current.id) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) current.points.push(padPoint(each));
    repaint();
    schedule();
  });

  function endStroke(event) {
    if (current === null || event.pointerId !== current.id) return;
    current = null;
    schedule();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  function undo() {
    if (strokes.length === 0) return;
    strokes.pop();
    current = null;
    keyPen.down = false;
    placeCursor();
    repaint();
    if (strokes.length) schedule();
    else resetResult("Draw or upload a digit.");
  }

  function clear() {
    strokes.length = 0;
    current = null;
    keyPen.down = false;
    placeCursor();
    repaint();
    resetResult("Cleared. Draw or upload a digit.");
  }

  undoButton.addEventListener("click", undo);
  $("clear").addEventListener("click", clear);
  // -- drawing with the keyboard: a pen cursor moved by the arrow keys -----------------------
  const cursor = $("cursor");
  const keyPen = { x: pad.width / 2, y: pad.height / 4, down: false };
  const STEPS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function placeCursor() {
    // The canvas may be shown scaled: place the cursor in displayed pixels.
    const scale = pad.getBoundingClientRect().width / pad.width;
    cursor.style.left = `${keyPen.x * scale}px`;
    cursor.style.top = `${keyPen.y * scale}px`;
    cursor.classList.toggle("down", keyPen.down);
  }

  function liftKeyPen() {
    if (keyPen.down) {
      keyPen.down = false;
      current = null;
      schedule();
    }
    placeCursor();
  }

  pad.addEventListener("focus", () => {
    cursor.hidden = false;
    placeCursor();
  });
  pad.addEventListener("blur", () => {
    liftKeyPen();
    cursor.hidden = true;
  });
  pad.addEventListener("keydown", (event) => {
    if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      if (keyPen.down) {
        liftKeyPen();
        setStatus("Pen lifted.");
      } else {
        keyPen.down = true;
        current = { width: Number(strokeWidth.value), points: [[keyPen.x, keyPen.y]], id: "keys" };
        strokes.push(current);
        repaint();
        placeCursor();
        setStatus("Pen down: the arrow keys draw.");
      }
    } else if (event.key in STEPS) {
      event.preventDefault(); // the arrows draw instead of scrolling
      const step = event.shiftKey ? 2 : 10;
      const [dx, dy] = STEPS[event.key];
      keyPen.x = Math.max(0, Math.min(pad.width, keyPen.x + dx * step));
      keyPen.y = Math.max(0, Math.min(pad.height, keyPen.y + dy * step));
      if (keyPen.down && current !== null) {
        current.points.push([keyPen.x, keyPen.y]);
        repaint();
        schedule();
      }
      placeCursor();
    }
  });

  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLInputElement;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !typing) {
      event.preventDefault();
      undo();
    } else if (event.key === "Escape" && event.target === pad) {
      clear();
    }
  });

  // -- predictions -------------------------------------------------------------------------
  function schedule() {
    // Debounced, but a long stroke still gets an answer every MAX_WAIT_MS.
    const now = performance.now();
    const since = timer !== null ? timer.since : now;
    if (timer !== null) clearTimeout(timer.id);
    const mine = { since };
    const delay = Math.max(0, Math.min(DEBOUNCE_MS, since + MAX_WAIT_MS - now));
    mine.id = setTimeout(() => predictDrawing(mine), delay);
    timer = mine;
    updateBusy();
  }

  function cancelPending() {
    if (timer !== null) clearTimeout(timer.id);
    timer = null;
    if (inFlight !== null) inFlight.controller.abort();
    inFlight = null;
    seq++;
    updateBusy();
  }

  function predictDrawing(mine) {
    // Still "pending" while the browser encodes the PNG, so the page never looks idle
    // between the debounce and the request.
    pad.toBlob((blob) => {
      if (timer !== mine) return; // drawn on, undone or cleared meanwhile
      timer = null;
      if (strokes.length === 0) updateBusy();
      else if (blob === null) {
        updateBusy();
        showError("The browser could not turn the drawing into a picture.");
      } else send(blob, "drawing.png", "your drawing");
    }, "image/png");
  }

  async function send(blob, filename, what) {
    if (inFlight !== null) inFlight.controller.abort();
    const mine = ++seq;
    const controller = new AbortController();
    inFlight = { controller, seq: mine };
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, TIMEOUT_MS);
    updateBusy();
    setStatus(`Asking the model about ${what}`);
    const form = new FormData();
    form.append("images", blob, filename);
    let message = null;
    let answer = null;
    try {
      const response = await fetch(PREDICT_URL, {
        method: "POST",
        body: form,
        signal: controller.signal,
      });
      const body = await readBody(response);
      if (response.ok) answer = body;
      else message = describeError(response.status, body);
    } catch (error) {
      if (mine !== seq) return; // replaced by a newer request: nothing to say
      message = timedOut
        ? `The service gave no answer within ${TIMEOUT_MS / 1000} s. Try again.`
        : `Could not reach the service (${error.message || error}).`;
    } finally {
      clearTimeout(timeout);
      if (inFlight !== null && inFlight.seq === mine) inFlight = null;
      updateBusy();
    }
    if (mine !== seq) return;
    if (message !== null) {
      resetChart();
      setStatus(`No prediction for ${what}.`);
      showError(message);
      return;
    }
    clearError();
    show(answer.predictions[0], answer.model_version, what);
  }

  async function readBody(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  function describeError(status, body) {
    // Our errors are {"error", "reason", ...}; be tolerant of anything else.
    const found = Array.isArray(body) ? body[0] : body;
    if (found && typeof found === "object" && typeof found.error === "string") {
      const reason = found.reason ? `, ${found.reason}` : "";
      return `The service refused it (HTTP ${status}${reason}): ${found.error}`;
    }
    const text = typeof body === "string" && body.trim() ? `: ${body.trim().slice(0, 200)}` : "";
    return `The service answered HTTP ${status}${text}`;
  }

  function show(prediction, version, what) {
    const probabilities = prediction.probabilities;
    labelBox.textContent = String(prediction.label);
    labelBox.dataset.label = String(prediction.label);
    const percent = (p) => `${(100 * p).toFixed(1)}%`;
    confidenceBox.textContent = `${percent(prediction.confidence)} sure`;
    probabilities.forEach((p, digit) => {
      const row = barRows[digit];
      row.querySelector(".bar span").style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      row.querySelector(".pct").textContent = percent(p);
      row.classList.toggle("top", digit === prediction.label);
      row.setAttribute("aria-label", `digit ${digit}: ${percent(p)}`);
    });
    drawPreview(prediction.prepared);
    setStatus(`The model (version ${version}) reads ${what} as ${prediction.label}.`);
    answered("done");
  }

  function drawPreview(pixels) {
    const context = preview.getContext("2d");
    if (!Array.isArray(pixels)) {
      context.clearRect(0, 0, preview.width, preview.height);
      preview.setAttribute("aria-label", "The 28 by 28 image the model received: nothing yet");
      return;
    }
    const image = context.createImageData(28, 28);
    pixels.flat().forEach((value, i) => {
      image.data.set([value, value, value, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    preview.setAttribute(
      "aria-label",
      "The 28 by 28 image the model received: the digit in white on black, centred",
    );
  }

  function resetChart() {
    labelBox.textContent = "–";
    labelBox.dataset.label = "";
    confidenceBox.textContent = "";
    for (const [digit, row] of barRows.entries()) {
      row.querySelector(".bar span").style.width = "0";
      row.querySelector(".pct").textContent = "–";
      row.classList.remove("top");
      row.setAttribute("aria-label", `digit ${digit}: no prediction yet`);
    }
    drawPreview(null);
  }

  function resetResult(text) {
    cancelPending();
    resetChart();
    clearError();
    setStatus(text);
    document.body.dataset.state = "idle";
  }

  // -- uploads -----------------------------------------------------------------------------
  function upload(file) {
    if (!file) return;
    strokes.length = 0;
    repaint();
    cancelPending();
    if (photo.src) URL.revokeObjectURL(photo.src);
    photo.src = URL.createObjectURL(file);
    photo.alt = `The uploaded picture, ${file.name}`;
    photo.hidden = false;
    send(file, file.name || "upload", file.name ? `“${file.name}”` : "the picture");
  }

  // A file the browser cannot show either (the API's answer says why) is not shown broken.
  photo.addEventListener("error", () => {
    photo.hidden = true;
  });

  fileInput.addEventListener("change", () => {
    upload(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again sends it again
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    upload(event.dataTransfer.files[0]);
  });

  // -- the served model and its training report ----------------------------------------------
  async function getJson(url) {
    const response = await fetch(url);
    const body = await readBody(response);
    if (!response.ok) throw new Error(describeError(response.status, body));
    return body;
  }

  async function describeModel() {
    const info = $("model-info");
    const reportStatus = $("report-status");
    let model;
    try {
      model = (await getJson("/metadata")).model;
    } catch (error) {
      info.textContent = `Could not read the served model: ${error.message}`;
      reportStatus.textContent = "No report: the served model is unknown.";
      return;
    }
    const accuracy =
      typeof model.test_accuracy === "number"
        ? `test accuracy ${(100 * model.test_accuracy).toFixed(2)}%`
        : "test accuracy unknown";
    info.textContent = `Model version ${model.version} (${model.implementation}), ${accuracy}.`;
    info.dataset.version = String(model.version);
    try {
      const report = await getJson(`/models/${model.version}/report`);
      showReport(report, reportStatus);
    } catch (error) {
      reportStatus.textContent = `Could not read the training report: ${error.message}`;
    }
  }

  const CAPTIONS = {
    "learning_curves.png": "Learning curves: training loss and accuracy per epoch",
    "confusion_matrix.png": "Confusion matrix on the 10,000 test digits",
    "misclassified.png": "Test digits the model got wrong",
  };

  function showReport(report, reportStatus) {
    const figures = $("report-figures");
    figures.replaceChildren();
    if (report.files.length === 0) {
      reportStatus.textContent = `Model version ${report.version} was trained without a report.`;
      return;
    }
    reportStatus.textContent = `From the training of model version ${report.version}.`;
    for (const file of report.files) {
      const figure = document.createElement("figure");
      const image = document.createElement("img");
      const caption = document.createElement("figcaption");
      const text = CAPTIONS[file.name] || file.name;
      image.src = file.url;
      image.alt = text;
      image.loading = "lazy";
      caption.textContent = text;
      figure.append(image, caption);
      figures.append(figure);
    }
  }

  repaint();
  updateBusy();
  document.body.dataset.state = "idle";
  describeModel();
})();

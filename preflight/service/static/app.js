// The photo check page: choose, drop or take a photo; POST it to /v1/check; show the verdict, the hints
// (in the chosen language) and the annotated photo. Plain JavaScript, no build step, no third-party code.
"use strict";

(() => {
  const TEXT = {
    en: {
      title: "Check your photo",
      language: "Language",
      lead: "Before you upload a photo for identity verification, check it here. "
        + "Nothing is stored: the photo is checked and forgotten.",
      drop: "Drop a photo here",
      choose: "Choose a photo",
      camera: "Use the camera",
      capture: "Take the photo",
      close_camera: "Close the camera",
      details: "Details for developers",
      checking: "Checking the photo…",
      pass: "PASS",
      fail: "FAIL",
      error: "ERROR",
      pass_title: "The photo is good to upload.",
      pass_tips: "It could still be better:",
      fail_title: "Please fix this and try again:",
      unreadable: "This file is not a photo we can read.",
      busy: "The service is busy. Trying again in {s} s…",
      failed: "The check did not work ({status}). Please try again.",
      offline: "The service could not be reached. Please try again.",
      camera_denied: "The camera is not available: {reason}",
      annotated: "What the check saw: face box, eyes, head pose and the problems found.",
      original: "Your photo.",
    },
    de: {
      title: "Prüfen Sie Ihr Foto",
      language: "Sprache",
      lead: "Prüfen Sie Ihr Foto hier, bevor Sie es zur Identitätsprüfung hochladen. "
        + "Es wird nichts gespeichert: Das Foto wird geprüft und wieder vergessen.",
      drop: "Foto hierher ziehen",
      choose: "Foto auswählen",
      camera: "Kamera verwenden",
      capture: "Foto aufnehmen",
      close_camera: "Kamera schließen",
      details: "Details für Entwickler",
      checking: "Das Foto wird geprüft…",
      pass: "OK",
      fail: "NICHT OK",
      error: "FEHLER",
      pass_title: "Das Foto kann hochgeladen werden.",
      pass_tips: "Es ginge noch besser:",
      fail_title: "Bitte beheben Sie das und versuchen Sie es erneut:",
      unreadable: "Diese Datei ist kein lesbares Foto.",
      busy: "Der Dienst ist ausgelastet. Neuer Versuch in {s} s…",
      failed: "Die Prüfung hat nicht funktioniert ({status}). Bitte versuchen Sie es erneut.",
      offline: "Der Dienst ist nicht erreichbar. Bitte versuchen Sie es erneut.",
      camera_denied: "Die Kamera ist nicht verfügbar: {reason}",
      annotated: "Was die Prüfung gesehen hat: Gesicht, Augen, Kopfhaltung und die gefundenen Probleme.",
      original: "Ihr Foto.",
    },
  };
  const MAX_RETRIES = 3;

  const $ = (id) => document.getElementById(id);
  const el = {
    locale: $("locale"), drop: $("drop"), file: $("file"),
    cameraStart: $("camera-start"), camera: $("camera"), video: $("video"),
    capture: $("camera-capture"), cameraStop: $("camera-stop"),
    result: $("result"), status: $("status"), verdict: $("verdict"),
    hintsTitle: $("hints-title"), hints: $("hints"), figure: $("figure"),
    annotated: $("annotated"), caption: $("caption"), details: $("details"),
    issues: document.querySelector("#issues tbody"),
  };

  let locale = pickLocale();
  let current = null;        // {blob, name} of the photo on show
  let sequence = 0;          // answers to older requests are ignored
  let objectUrl = null;
  let stream = null;

  function pickLocale() {
    const fromUrl = new URLSearchParams(location.search).get("locale");
    const wanted = (fromUrl || navigator.language || "en").toLowerCase().slice(0, 2);
    return TEXT[wanted] ? wanted : "en";
  }

  function t(key, vars) {
    let text = (TEXT[locale] && TEXT[locale][key]) || TEXT.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, String(value));
    return text;
  }

  function applyLocale() {
    document.documentElement.lang = locale;
    el.locale.value = locale;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  }

  function setStatus(text) { el.status.textContent = text || ""; }

  function setVerdict(kind) {
    el.verdict.dataset.verdict = kind;
    el.result.dataset.state = kind;
    el.verdict.textContent = kind === "pass" ? t("pass") : kind === "fail" ? t("fail")
      : kind === "error" ? t("error") : kind === "pending" ? t("checking") : "";
  }

  function clearResult() {
    el.hints.replaceChildren();
    el.hintsTitle.hidden = true;
    el.issues.replaceChildren();
    el.details.hidden = true;
  }

  function showPhoto(src, annotated) {
    el.annotated.src = src;
    el.annotated.dataset.annotated = annotated ? "true" : "false";
    el.caption.textContent = annotated ? t("annotated") : t("original");
    el.figure.hidden = false;
  }

  function showReport(report, status) {
    const passed = report.passed === true;
    setVerdict(passed ? "pass" : "fail");
    setStatus(passed ? t("pass_title") : status === 422 ? t("unreadable") : "");
    el.verdict.dataset.codes = Object.keys((report.issues && report.issues.preflight) || {}).join(" ");
    const hints = Array.isArray(report.hints) ? report.hints : [];
    el.hintsTitle.textContent = passed ? t("pass_tips") : t("fail_title");
    el.hintsTitle.hidden = hints.length === 0;
    el.hints.replaceChildren(...hints.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    const details = Array.isArray(report.details) ? report.details : [];
    el.issues.replaceChildren(...details.map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.code = d.code;
      for (const value of [d.code, d.severity, fmt(d.measured), fmt(d.limit)]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    el.details.hidden = details.length === 0;
    if (report.annotated_image) showPhoto(report.annotated_image, true);
  }

  function showError(message) {
    setVerdict("error");
    setStatus(message);
    el.verdict.dataset.codes = "";
  }

  function fmt(value) {
    if (value === null || value === undefined) return "–";
    if (Array.isArray(value)) return value.join(" / ");
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
    return String(value);
  }

  async function check(blob, name) {
    current = { blob, name };
    const mine = ++sequence;
    clearResult();
    setVerdict("pending");
    setStatus("");
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(blob);
    showPhoto(objectUrl, false);

    for (let attempt = 0; ; attempt++) {
      const form = new FormData();
      form.append("image", blob, name || "photo.jpg");
      form.append("locale", locale);
      form.append("annotate", "true");
      let response;
      let body = null;
      try {
        response = await fetch(`/v1/check?locale=${encodeURIComponent(locale)}`, { method: "POST", body: form });
        body = await response.json().catch(() => null);
      } catch (err) {
        if (mine === sequence) showError(t("offline"));
        return;
      }
      if (mine !== sequence) return;
      if (response.status === 503 && attempt < MAX_RETRIES) {
        const wait = Math.min(10, Number(response.headers.get("Retry-After")) || 1);
        setStatus(t("busy", { s: wait }));
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        if (mine !== sequence) return;
        continue;
      }
      if (body && typeof body.passed === "boolean") {
        showReport(body, response.status);  // 200, 422 (unreadable) and 413 (too large) carry a report shape
      } else {
        showError((body && body.message) || t("failed", { status: response.status }));
      }
      return;
    }
  }

  // -- choose / drop ------------------------------------------------------------------------------------
  el.file.addEventListener("change", () => {
    const file = el.file.files && el.file.files[0];
    if (file) check(file, file.name);
    el.file.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    el.drop.addEventListener(type, (event) => {
      event.preventDefault();
      el.drop.dataset.state = "over";
    });
  }
  el.drop.addEventListener("dragleave", () => { el.drop.dataset.state = "idle"; });
  el.drop.addEventListener("drop", (event) => {
    event.preventDefault();
    el.drop.dataset.state = "idle";
    const file = event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0];
    if (file) check(file, file.name);
  });
  // A photo dropped next to the drop zone must not navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  // -- camera -------------------------------------------------------------------------------------------
  const canUseCamera = Boolean(window.isSecureContext && navigator.mediaDevices
    && navigator.mediaDevices.getUserMedia);
  el.cameraStart.hidden = !canUseCamera;

  el.cameraStart.addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 960 } },
        audio: false,
      });
    } catch (err) {
      showError(t("camera_denied", { reason: (err && err.name) || err }));
      return;
    }
    el.video.srcObject = stream;
    el.camera.hidden = false;
    el.camera.dataset.ready = "false";
    el.video.addEventListener("loadeddata", () => { el.camera.dataset.ready = "true"; }, { once: true });
  });

  function stopCamera() {
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    el.video.srcObject = null;
    el.camera.hidden = true;
  }
  el.cameraStop.addEventListener("click", stopCamera);

  el.capture.addEventListener("click", () => {
    const { videoWidth: width, videoHeight: height } = el.video;
    if (!width || !height) return;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(el.video, 0, 0, width, height);
    canvas.toBlob((blob) => {
      if (!blob) return;
      stopCamera();
      check(blob, "camera.jpg");
    }, "image/jpeg", 0.92);
  });

  // -- language -----------------------------------------------------------------------------------------
  el.locale.addEventListener("change", () => {
    locale = TEXT[el.locale.value] ? el.locale.value : "en";
    applyLocale();
    if (current) check(current.blob, current.name);
  });

  applyLocale();
  document.body.dataset.ready = "true";
})();

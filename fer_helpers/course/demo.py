"""The site's live demo: the exported model of notebook 11 running in the browser itself.

    build/site/demo.html       webcam (the face goes in the guide box) or an uploaded photo;
                               the class probabilities as big bars, for the projector

`python3 tasks.py site` writes the page with the rest of the site (site.build_site
calls write_demo). The model is a shipped checkpoint exported to ONNX by the
package's own export_checkpoint (what `python -m fer_helpers export` does): the
7-class `best-7class` when it exports, else the 3-class `si100-3class`.

The runtime is onnxruntime-web (Microsoft, MIT licence), version ORT_VERSION from
npm, run on WebAssembly on the CPU with one thread. It is too large to keep in
the repository (its WebAssembly file alone is 15 MB), so the build fetches its
npm package once with `npm pack` into build/vendor/ (checked against the
sha512 that npm's registry gives for that exact version, ORT_INTEGRITY) and
copies what the page needs into site/assets/onnxruntime-web/. Nothing is fetched
from the internet when the page runs.

The page works from a web server and from the disk (file://, the README's way to
open the site: a USB stick in a classroom). Browsers refuse to fetch files from
a page opened from disk, so the WebAssembly module and the model travel inside
ordinary <script> files, as base64 text (ort-wasm-embedded.js, model.js); the
page decodes them and hands them to onnxruntime-web. It is the same code either
way, so what the browser test checks over http is what runs from the stick.

Preprocessing is the package's face pipeline (faces.to_gray, faces.crop_face,
data.to_model_input), redone in JavaScript (PREPROCESS_JS) to give the same
48x48 bytes:

- the crop: the guide box, a centred square of GUIDE_FRACTION of the video's
  shorter side; for a photo, its centred square as large as fits (what
  faces.fit_face crops when it finds no face);
- gray: OpenCV's COLOR_RGB2GRAY on bytes, 0.299 R + 0.587 G + 0.114 B in 15-bit
  fixed point, (9798 R + 19235 G + 3735 B + 16384) >> 15 (measured: the same bytes as
  OpenCV 4.14 on a million random pixels);
- 48x48: OpenCV's INTER_AREA when shrinking (its whole-factor and its
  fractional-factor algorithms, in float32 as OpenCV computes them) and its
  INTER_LINEAR when enlarging (a crop under 48 pixels; 11-bit fixed point).
  Measured against cv2.resize on random squares of 1 to 720 pixels: the same bytes;
- normalisation as the checkpoint's `normalization` says: "u8/127.5-1", i.e.
  mean 0.5 and std 0.5 on [0, 1], in float32, the gray copied to every channel
  the model takes.

The page shows its last input and probabilities in #fer-result's data-input
(base64 of the 48x48 bytes) and data-probabilities (JSON), for the browser test
to compare with fer_helpers.faces.classify_faces.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ORT_PACKAGE = "onnxruntime-web"
ORT_VERSION = "1.31.1"
ORT_INTEGRITY = (  # `npm view onnxruntime-web@1.31.1 dist.integrity`
    "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
)
# The classic-script build with the WebAssembly backend only (global `ort`), and the
# Emscripten module and WebAssembly binary it loads (single-threaded, SIMD).
ORT_SCRIPT = "ort.wasm.min.js"
ORT_MODULE = "ort-wasm-simd-threaded.mjs"
ORT_WASM = "ort-wasm-simd-threaded.wasm"
RUNTIME_FILES = (ORT_SCRIPT, ORT_MODULE, ORT_WASM, "package.json")
ORT_EMBEDDED = "ort-wasm-embedded.js"  # written here: ORT_MODULE's text and ORT_WASM in base64

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "build" / "vendor"  # the npm package and exported models, kept between builds
PAGE = "demo.html"
RUNTIME_ASSETS = "assets/onnxruntime-web"
DEMO_ASSETS = "assets/demo"
MODELS = ("best-7class", "si100-3class")  # in order of preference
GUIDE_FRACTION = 0.6  # the guide box's side, of the video's shorter side
SCALES = {"u8/127.5-1": (0.5, 0.5)}  # normalization scale -> (mean, std) on u8 / 255

MIT_LICENCE = """onnxruntime-web {version}, from npm (https://www.npmjs.com/package/onnxruntime-web),
licensed under the MIT licence (its package.json: "license": "MIT"):

MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class RuntimeMissing(RuntimeError):
    """onnxruntime-web is not in the cache and npm could not fetch it."""


@dataclass
class Demo:
    """What write_demo wrote: the page, the model it runs, and why not another."""

    page: Path
    model: str
    class_names: list[str]
    channels: int
    note: str = ""  # why the preferred model was not used


def runtime_dir(vendor: Path = VENDOR) -> Path:
    return vendor / f"{ORT_PACKAGE}-{ORT_VERSION}"


def integrity_of(path: Path) -> str:
    """npm's integrity string (sha512, base64) of a file."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_runtime(vendor: Path = VENDOR) -> Path:
    """onnxruntime-web's files in build/vendor/, fetched once with `npm pack` (then offline).

    Raises RuntimeMissing when npm is missing or fails (no network), and when the
    package npm gives does not have the pinned sha512.
    """
    folder = runtime_dir(vendor)
    if all((folder / name).is_file() for name in RUNTIME_FILES):
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeMissing(
            f"{ORT_PACKAGE} {ORT_VERSION} is not in {folder} and there is no `npm` to fetch it:"
            " install Node.js (Debian: `apt-get install npm`) and build again"
        )
    vendor.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=vendor) as temporary:
        spec = f"{ORT_PACKAGE}@{ORT_VERSION}"
        result = subprocess.run(
            [npm, "pack", spec, "--silent", "--pack-destination", temporary],
            cwd=temporary,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarballs = list(Path(temporary).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            raise RuntimeMissing(
                f"`npm pack {spec}` failed: {(result.stderr or result.stdout).strip()[-500:]}"
            )
        if integrity_of(tarballs[0]) != ORT_INTEGRITY:
            raise RuntimeMissing(
                f"npm gave a {spec} whose sha512 is not the one pinned in {__name__} "
                f"({integrity_of(tarballs[0])}): refusing it"
            )
        unpacked = Path(temporary) / "files"
        with tarfile.open(tarballs[0]) as tar:
            for name in RUNTIME_FILES:
                member = tar.getmember(
                    f"package/dist/{name}" if name != "package.json" else "package/package.json"
                )
                source = tar.extractfile(member)
                (unpacked / name).parent.mkdir(parents=True, exist_ok=True)
                (unpacked / name).write_bytes(source.read())
        (unpacked / "LICENSE.txt").write_text(MIT_LICENCE.format(version=ORT_VERSION))
        shutil.rmtree(folder, ignore_errors=True)
        unpacked.rename(folder)
    return folder


def embedded_runtime(folder: Path) -> str:
    """A classic script that holds the Emscripten module (text) and the WebAssembly (base64)."""
    module = (folder / ORT_MODULE).read_text(encoding="utf-8")
    wasm = base64.b64encode((folder / ORT_WASM).read_bytes()).decode()
    return (
        f"// {ORT_MODULE} and {ORT_WASM} of onnxruntime-web {ORT_VERSION} (MIT licence,"
        " LICENSE.txt), as text for pages opened from disk\n"
        f'window.ferOrtEmbedded = {{module: {json.dumps(module)},\nwasm: "{wasm}"}};\n'
    )


def exported_model(name: str, vendor: Path = VENDOR) -> tuple[Path, dict]:
    """A shipped model as ONNX (export_checkpoint, cached by the weights' sha256) and its info."""
    from ..checkpoints import load_checkpoint
    from ..export import export_checkpoint
    from ..pretrained import resolve_weights

    weights = resolve_weights(name)
    info = load_checkpoint(weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = vendor / "models" / f"{name}-{digest}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_checkpoint(weights, path)  # raises when the ONNX scores differ from PyTorch's
    return path, info


def choose_model(vendor: Path = VENDOR) -> tuple[str, Path, dict, str]:
    """(name, ONNX file, checkpoint info, note): the first of MODELS that exports."""
    notes = []
    for name in MODELS:
        try:
            path, info = exported_model(name, vendor)
        except Exception as error:  # a missing file, or an export that fails: try the next
            notes.append(f"{name} did not export ({type(error).__name__}: {error})")
            continue
        return name, path, info, "; ".join(notes)
    raise RuntimeError("no shipped model exports to ONNX: " + "; ".join(notes))


def model_script(name: str, onnx_file: Path, info: dict) -> tuple[str, dict]:
    """model.js (the ONNX file in base64, with what the page needs to know) and that config."""
    from ..models import INPUT_SIZE

    normalization = info["normalization"]
    if normalization["scale"] not in SCALES:
        raise ValueError(f"{name}: the demo knows no normalization {normalization['scale']!r}")
    mean, std = SCALES[normalization["scale"]]
    config = {
        "name": name,
        "classNames": list(info["class_names"]),
        "channels": int(normalization["channels"]),
        "size": int(info["arch_kwargs"].get("input_size", INPUT_SIZE)),
        "scale": normalization["scale"],
        "mean": mean,
        "std": std,
        "guideFraction": GUIDE_FRACTION,
    }
    onnx = base64.b64encode(onnx_file.read_bytes()).decode()
    text = f'window.ferModel = {json.dumps(config)};\nwindow.ferModel.onnx = "{onnx}";\n'
    return text, config


def write_demo(
    site: Path,
    page_css: str,
    vendor: Path = VENDOR,
    write: Callable[[Path, str], None] | None = None,
) -> Demo:
    """site/demo.html and its assets: the runtime, the model, the page's script.

    write(path, text) writes the page (site.write_checked: refusing remote addresses).
    Raises RuntimeMissing when onnxruntime-web cannot be had (see fetch_runtime).
    """
    runtime = fetch_runtime(vendor)
    name, onnx_file, info, note = choose_model(vendor)
    target = site / RUNTIME_ASSETS
    target.mkdir(parents=True, exist_ok=True)
    for file in (ORT_SCRIPT, "LICENSE.txt", "package.json"):
        shutil.copy2(runtime / file, target / file)
    (target / ORT_EMBEDDED).write_text(embedded_runtime(runtime), encoding="utf-8")
    assets = site / DEMO_ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    script, config = model_script(name, onnx_file, info)
    (assets / "model.js").write_text(script, encoding="utf-8")
    (assets / "demo.js").write_text(PREPROCESS_JS + PAGE_JS, encoding="utf-8")
    page = site / PAGE
    text = page_html(config, page_css, note)
    if write is None:
        page.write_text(text, encoding="utf-8")
    else:
        write(page, text)
    return Demo(page, name, config["classNames"], config["channels"], note)


# --- the page ------------------------------------------------------------------------------

# The package's preprocessing in JavaScript; pure functions on bytes, so node can run them.
PREPROCESS_JS = r"""
"use strict";
// faces.to_gray: cv2.cvtColor(RGB2GRAY) on bytes, 0.299 R + 0.587 G + 0.114 B in 15-bit
// fixed point with rounding, as OpenCV 4 computes it. rgba: a canvas's ImageData.data.
function ferGray(rgba, count) {
  const gray = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const sum = rgba[4 * i] * 9798 + rgba[4 * i + 1] * 19235 + rgba[4 * i + 2] * 3735;
    gray[i] = (sum + 16384) >> 15;
  }
  return gray;
}

// cv2's saturate_cast<uchar>(float) (or to top): round half to even, then clip.
function ferRound(value, top = 255) {
  let r = Math.round(value);
  if (Math.abs(value % 1) === 0.5 && r % 2 !== 0) r -= 1;
  return Math.min(top, Math.max(0, r));
}

// OpenCV's computeResizeAreaTab: which source pixels each output pixel averages, and how much.
function ferAreaTable(sourceSize, size, scale) {
  const table = [];
  for (let d = 0; d < size; d++) {
    const f1 = d * scale, f2 = f1 + scale;
    const cell = Math.min(scale, sourceSize - f1);
    let s2 = Math.min(Math.floor(f2), sourceSize - 1);
    const s1 = Math.min(Math.ceil(f1), s2);
    if (s1 - f1 > 1e-3) table.push([d, s1 - 1, Math.fround((s1 - f1) / cell)]);
    for (let s = s1; s < s2; s++) table.push([d, s, Math.fround(1.0 / cell)]);
    if (f2 - s2 > 1e-3) {
      table.push([d, s2, Math.fround(Math.min(Math.min(f2 - s2, 1.0), cell) / cell)]);
    }
  }
  return table;
}

// cv2.resize(INTER_AREA) of a gray square (side x side bytes) down to size x size.
function ferResizeArea(gray, side, size) {
  const out = new Uint8Array(size * size);
  const scale = 1 / (size / side);  // OpenCV: scale_x = 1 / inv_scale_x
  const k = Math.round(scale);
  if (Math.abs(scale - k) < 2.220446049250313e-16) {  // whole factor: resizeAreaFast
    const area = k * k, inverse = Math.fround(1 / area);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let sum = 0;
        for (let dy = 0; dy < k; dy++) {
          const row = (y * k + dy) * side + x * k;
          for (let dx = 0; dx < k; dx++) sum += gray[row + dx];
        }
        out[y * size + x] = k === 2 ? (sum + 2) >> 2 : ferRound(Math.fround(sum * inverse));
      }
    }
    return out;
  }
  const xs = ferAreaTable(side, size, scale), ys = ferAreaTable(side, size, scale);
  const sums = new Float32Array(size), buffer = new Float32Array(size);
  let previous = -1;
  const flush = (row) => {
    for (let x = 0; x < size; x++) out[row * size + x] = ferRound(sums[x]);
  };
  for (const [dy, sy, beta] of ys) {
    buffer.fill(0);
    for (const [dx, sx, alpha] of xs) {
      buffer[dx] = Math.fround(buffer[dx] + Math.fround(gray[sy * side + sx] * alpha));
    }
    if (dy !== previous) {
      if (previous >= 0) flush(previous);
      for (let x = 0; x < size; x++) sums[x] = Math.fround(beta * buffer[x]);
      previous = dy;
    } else {
      for (let x = 0; x < size; x++) sums[x] = Math.fround(sums[x] + Math.fround(beta * buffer[x]));
    }
  }
  flush(previous);
  return out;
}

// cv2.resize(INTER_LINEAR) up to size x size, in OpenCV's 11-bit fixed point.
function ferLinearTaps(sourceSize, size) {
  const scale = sourceSize / size, taps = [];
  for (let d = 0; d < size; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5), s = Math.floor(f);
    f = Math.fround(f - s);
    let first = s, second = s + 1;
    if (s < 0) { f = 0; first = second = 0; }
    if (s + 1 >= sourceSize) { f = 0; first = second = sourceSize - 1; }
    const a0 = ferRound(Math.fround(1 - f) * 2048, 32767), a1 = ferRound(f * 2048, 32767);
    taps.push([Math.max(0, first), Math.min(sourceSize - 1, second), a0, a1]);
  }
  return taps;
}

function ferResizeLinear(gray, side, size) {
  const out = new Uint8Array(size * size);
  const xs = ferLinearTaps(side, size);
  const scale = side / size;
  const rows = (row) =>
    Array.from(xs, ([x0, x1, a0, a1]) => gray[row * side + x0] * a0 + gray[row * side + x1] * a1);
  for (let y = 0; y < size; y++) {
    let fy = Math.fround((y + 0.5) * scale - 0.5), sy = Math.floor(fy);
    fy = Math.fround(fy - sy);
    const b0 = ferRound(Math.fround(1 - fy) * 2048, 32767), b1 = ferRound(fy * 2048, 32767);
    const top = rows(Math.min(Math.max(sy, 0), side - 1));
    const bottom = rows(Math.min(Math.max(sy + 1, 0), side - 1));
    for (let x = 0; x < size; x++) {
      // OpenCV's VResizeLinearVec_32s8u: ((b0 (s0 >> 4)) >> 16 + (b1 (s1 >> 4)) >> 16 + 2) >> 2
      const value = (((b0 * (top[x] >> 4)) >> 16) + ((b1 * (bottom[x] >> 4)) >> 16) + 2) >> 2;
      out[y * size + x] = Math.min(255, Math.max(0, value));
    }
  }
  return out;
}

// faces.crop_face's resize: INTER_AREA when shrinking, INTER_LINEAR otherwise.
function ferResize(gray, side, size) {
  if (side === size) return gray.slice();
  return side > size ? ferResizeArea(gray, side, size) : ferResizeLinear(gray, side, size);
}

// data.to_model_input: float32 u8 / 127.5 - 1 (mean 0.5, std 0.5 on u8 / 255), per channel.
function ferModelInput(pixels, channels) {
  const x = new Float32Array(channels * pixels.length);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < pixels.length; i++) {
      x[c * pixels.length + i] = Math.fround(Math.fround(pixels[i] / 127.5) - 1);
    }
  }
  return x;
}

function ferSoftmax(scores) {
  const top = Math.max(...scores);
  const e = Array.from(scores, (s) => Math.exp(s - top));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

if (typeof module !== "undefined") {
  module.exports = { ferGray, ferResize, ferModelInput, ferSoftmax };
}
"""

# The page's behaviour: load the runtime and the model, read the camera or a photo, show bars.
PAGE_JS = r"""
const fer = { session: null, model: window.ferModel, camera: null, busy: false, top: null };
const $ = (id) => document.getElementById(id);

function ferBytes(base64) {
  const text = atob(base64), bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function ferStatus(text) { $("fer-status").textContent = text; }

async function ferLoad() {
  // The WebAssembly comes from a <script> (ort-wasm-embedded.js), not fetched: that works
  // from a web server and from disk (file://) alike. One thread: no special headers needed.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const module = new Blob([window.ferOrtEmbedded.module], { type: "text/javascript" });
  ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(module) };
  ort.env.wasm.wasmBinary = ferBytes(window.ferOrtEmbedded.wasm);
  fer.session = await ort.InferenceSession.create(ferBytes(fer.model.onnx), {
    executionProviders: ["wasm"],
  });
  $("fer-camera").disabled = false;
  $("fer-photo").disabled = false;
  document.body.dataset.ready = "true";
  ferStatus("Ready: start the camera (C) or choose a photo (P).");
}

// The square the model sees: for the camera the guide box, for a photo its centre square.
function ferSquare(width, height, fraction) {
  const side = Math.max(1, Math.round(fraction * Math.min(width, height)));
  return { x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), side };
}

function ferShowGuide(width, height, square) {
  const guide = $("fer-guide");
  guide.style.left = (100 * square.x / width) + "%";
  guide.style.top = (100 * square.y / height) + "%";
  guide.style.width = (100 * square.side / width) + "%";
  guide.style.height = (100 * square.side / height) + "%";
  guide.hidden = false;
}

// The 48x48 bytes of a square of a picture (a video frame or an image), as fer_helpers makes them.
function ferFace(source, width, height, square) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(source, 0, 0, width, height);
  const rgba = context.getImageData(square.x, square.y, square.side, square.side).data;
  const gray = ferGray(rgba, square.side * square.side);
  return ferResize(gray, square.side, fer.model.size);
}

async function ferClassify(pixels, source) {
  const size = fer.model.size, channels = fer.model.channels;
  const x = new ort.Tensor("float32", ferModelInput(pixels, channels), [1, channels, size, size]);
  const output = await fer.session.run({ [fer.session.inputNames[0]]: x });
  const scores = output[fer.session.outputNames[0]].data;
  const probabilities = ferSoftmax(scores);
  ferShowInput(pixels);
  ferShowBars(probabilities);
  const result = $("fer-result");
  result.dataset.input = btoa(String.fromCharCode(...pixels));
  result.dataset.scores = JSON.stringify(Array.from(scores));
  result.dataset.probabilities = JSON.stringify(probabilities);
  result.dataset.source = source;
  result.dataset.count = String(Number(result.dataset.count || 0) + 1);
  return probabilities;
}

function ferShowInput(pixels) {
  const canvas = $("fer-input"), context = canvas.getContext("2d");
  const image = context.createImageData(fer.model.size, fer.model.size);
  for (let i = 0; i < pixels.length; i++) {
    image.data.set([pixels[i], pixels[i], pixels[i], 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

function ferShowBars(probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  fer.model.classNames.forEach((name, i) => {
    const row = $("fer-class-" + i), percent = 100 * probabilities[i];
    row.querySelector(".fer-fill").style.width = percent.toFixed(1) + "%";
    row.querySelector(".fer-value").textContent = Math.round(percent) + "%";
    row.setAttribute("aria-label", name + ": " + Math.round(percent) + " percent");
    row.classList.toggle("fer-top", i === best);
  });
  const name = fer.model.classNames[best];
  if (name !== fer.top) {  // screen readers hear a change of mind, not every frame
    fer.top = name;
    $("fer-summary").textContent =
      "Most likely: " + name + " (" + Math.round(100 * probabilities[best]) + "%)";
  }
}

async function ferCameraFrame() {
  const video = $("fer-video");
  if (!fer.camera) return;
  if (!fer.busy && video.readyState >= 2 && video.videoWidth > 0) {
    fer.busy = true;
    try {
      const width = video.videoWidth, height = video.videoHeight;
      const square = ferSquare(width, height, fer.model.guideFraction);
      ferShowGuide(width, height, square);
      await ferClassify(ferFace(video, width, height, square), "camera");
    } catch (error) {
      ferStatus("The model failed on a camera frame: " + error);
    } finally {
      fer.busy = false;
    }
  }
  requestAnimationFrame(ferCameraFrame);
}

async function ferStartCamera() {
  const button = $("fer-camera");
  if (fer.camera) {  // a second press stops it
    fer.camera.getTracks().forEach((track) => track.stop());
    fer.camera = null;
    button.textContent = "Start the camera (C)";
    button.setAttribute("aria-pressed", "false");
    ferStatus("Camera stopped.");
    return;
  }
  try {
    ferStatus("Asking for the camera…");
    fer.camera = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
      audio: false,
    });
  } catch (error) {
    fer.camera = null;
    const why = error.name === "NotAllowedError" ? "the browser was not allowed to use it"
      : error.name === "NotFoundError" ? "no camera was found" : String(error);
    ferStatus("No camera: " + why + ". Choose a photo instead (P).");
    return;
  }
  const video = $("fer-video");
  video.srcObject = fer.camera;
  video.hidden = false;
  $("fer-picture").hidden = true;
  await video.play();
  button.textContent = "Stop the camera (C)";
  button.setAttribute("aria-pressed", "true");
  ferStatus("Camera on: put your face in the yellow box, filling it from forehead to chin.");
  requestAnimationFrame(ferCameraFrame);
}

function ferChoosePhoto(file) {
  if (!file) return;
  if (fer.camera) ferStartCamera();  // stops it
  const picture = $("fer-picture");
  picture.onload = async () => {
    const width = picture.naturalWidth, height = picture.naturalHeight;
    const square = ferSquare(width, height, 1);
    $("fer-video").hidden = true;
    picture.hidden = false;
    picture.alt = "the chosen photo, " + file.name + "; the box marks the square the model reads";
    ferShowGuide(width, height, square);
    try {
      const probabilities = await ferClassify(ferFace(picture, width, height, square), "photo");
      const best = probabilities.indexOf(Math.max(...probabilities));
      ferStatus(file.name + ": " + fer.model.classNames[best] + ", " +
        Math.round(100 * probabilities[best]) + "%. The box shows the part the model reads.");
    } catch (error) {
      ferStatus("The model failed on " + file.name + ": " + error);
    }
  };
  picture.onerror = () => ferStatus(file.name + " is not an image this browser can read.");
  picture.src = URL.createObjectURL(file);
}

document.addEventListener("DOMContentLoaded", () => {
  $("fer-camera").addEventListener("click", ferStartCamera);
  $("fer-photo").addEventListener("change", (event) => ferChoosePhoto(event.target.files[0]));
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !fer.session) return;
    if (event.key === "c" || event.key === "C") { event.preventDefault(); ferStartCamera(); }
    if (event.key === "p" || event.key === "P") { event.preventDefault(); $("fer-photo").click(); }
    if (event.key === "f" || event.key === "F") {
      event.preventDefault();
      if (document.fullscreenElement) document.exitFullscreen();
      else document.documentElement.requestFullscreen();
    }
  });
  ferLoad().catch((error) => ferStatus("The model could not be loaded: " + error));
});
"""

DEMO_CSS = """
body { font: 24px/1.4 system-ui, sans-serif; margin: 0; color: #111; background: #fff; }
[hidden] { display: none !important; }
main { max-width: 1400px; margin: 0 auto; padding: 0 24px 24px; }
h1 { font-size: 1.6em; margin: 0.3em 0; }
h2 { font-size: 1.1em; margin: 0 0 0.4em; }
.fer-lead { margin: 0 0 0.6em; font-size: 20px; }
.fer-controls { display: flex; gap: 16px; flex-wrap: wrap; align-items: center; }
.fer-button { font: bold 26px system-ui, sans-serif; padding: 12px 24px; border-radius: 10px;
  border: 3px solid #0b3d91; background: #0b3d91; color: #fff; cursor: pointer; }
.fer-button.fer-secondary { background: #fff; color: #0b3d91; }
.fer-button:disabled { opacity: 0.5; cursor: wait; }
.fer-button:focus-visible, input:focus-visible + label { outline: 5px solid #f4b400;
  outline-offset: 3px; }
.fer-visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
#fer-status { font-weight: bold; min-height: 1.4em; margin: 0.5em 0; }
.fer-stage { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 32px;
  align-items: start; }
@media (max-width: 900px) { .fer-stage { grid-template-columns: 1fr; } }
.fer-view { margin: 0; }
.fer-frame { position: relative; display: inline-block; max-width: 100%; background: #222;
  vertical-align: top; }
.fer-frame video, .fer-frame img { display: block; max-width: 100%; max-height: 58vh;
  width: auto; height: auto; }
.fer-frame video { transform: scaleX(-1); }  /* a mirror: moving left moves left */
.fer-guide { position: absolute; border: 6px solid #f4b400; box-sizing: border-box;
  box-shadow: 0 0 0 4000px rgba(0, 0, 0, 0.35); pointer-events: none; }
.fer-frame { overflow: hidden; }
figcaption { font-size: 20px; margin-top: 8px; }
.fer-seen { display: flex; gap: 16px; align-items: center; margin-top: 8px; font-size: 20px; }
#fer-input { width: 120px; height: 120px; image-rendering: pixelated; border: 2px solid #555;
  background: #ccc; }
#fer-bars { list-style: none; padding: 0; margin: 0; }
#fer-bars li { display: grid; grid-template-columns: 7.5em 1fr 3.2em; gap: 12px;
  align-items: center; margin: 6px 0; font-size: 30px; }
.fer-track { height: 40px; background: #e6e6e6; border-radius: 6px; overflow: hidden; }
.fer-fill { display: block; height: 100%; width: 0; background: #5b7fb8; }
.fer-top .fer-fill { background: #0b3d91; }
.fer-top .fer-name, .fer-top .fer-value { font-weight: bold; }
.fer-value { text-align: right; font-variant-numeric: tabular-nums; }
#fer-summary { font-size: 30px; font-weight: bold; min-height: 1.4em; margin: 0.3em 0; }
.fer-keys { font-size: 20px; }
kbd { border: 1px solid #888; border-radius: 4px; padding: 0 6px; background: #f3f3f3; }
"""


def page_html(config: dict, page_css: str, note: str = "") -> str:
    """demo.html: the controls, the picture with its guide box, and one bar per class."""
    names = config["classNames"]
    rows = "\n".join(
        f'<li id="fer-class-{i}" aria-label="{html.escape(name)}: no picture yet">'
        f'<span class="fer-name" aria-hidden="true">{html.escape(name)}</span>'
        '<span class="fer-track" aria-hidden="true"><span class="fer-fill"></span></span>'
        '<span class="fer-value" aria-hidden="true">–</span></li>'
        for i, name in enumerate(names)
    )
    model = html.escape(config["name"])
    fallback = f'<p class="fer-banner">{html.escape(note)}</p>' if note else ""
    percent = round(100 * config["guideFraction"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Live demo: {model} in the browser</title>
<link rel="icon" href="data:,">
<style>{page_css}{DEMO_CSS}</style>
</head>
<body>
<nav class="fer-nav"><a href="index.html">course index</a></nav>
<main>
<h1>Live demo: reading expressions in the browser</h1>
<p class="fer-lead">The model of notebook 11, <code>{model}</code> ({len(names)} classes) exported
to ONNX, runs here in the browser with onnxruntime-web: no picture leaves this computer, and
no network is needed. It sees what the package's <code>predict</code> sees: a square cut
out, made gray and shrunk to 48&times;48 pixels.</p>
{fallback}
<div class="fer-controls">
<button id="fer-camera" class="fer-button" type="button" aria-pressed="false" disabled>
Start the camera (C)</button>
<input id="fer-photo" class="fer-visually-hidden" type="file" accept="image/*" disabled>
<label for="fer-photo" class="fer-button fer-secondary">Choose a photo (P)</label>
</div>
<p id="fer-status" role="status" aria-live="polite">Loading the model and the runtime…</p>
<div class="fer-stage">
<figure class="fer-view">
<div class="fer-frame">
<video id="fer-video" playsinline muted hidden
  aria-label="the camera's picture, mirrored, with the guide box in the middle"></video>
<img id="fer-picture" alt="" hidden>
<div id="fer-guide" class="fer-guide" hidden></div>
</div>
<figcaption>Camera: the yellow box in the middle ({percent}% of the picture's height) is
what the model reads; fill it with a face, forehead to chin, as FER2013's faces are framed.
A photo: its centred square is read, so crop it around the face first.</figcaption>
</figure>
<section aria-labelledby="fer-bars-title">
<h2 id="fer-bars-title">What the model says</h2>
<ol id="fer-bars" aria-label="probability of each class">
{rows}
</ol>
<p id="fer-summary" aria-live="polite"></p>
<div class="fer-seen"><canvas id="fer-input" width="{config["size"]}" height="{config["size"]}"
  role="img" aria-label="the 48 by 48 gray picture the model reads"></canvas>
<span>the model's input: {config["size"]}&times;{config["size"]} gray pixels</span></div>
</section>
</div>
<output id="fer-result" hidden data-count="0"></output>
<p class="fer-keys">Keys: <kbd>C</kbd> camera on/off, <kbd>P</kbd> choose a photo,
<kbd>F</kbd> full screen, <kbd>Tab</kbd> to move between the controls. Probabilities are the
model's softmax; on cartoon-like or badly lit faces it is often confidently wrong.</p>
</main>
<script src="{RUNTIME_ASSETS}/{ORT_SCRIPT}"></script>
<script src="{RUNTIME_ASSETS}/{ORT_EMBEDDED}"></script>
<script src="{DEMO_ASSETS}/model.js"></script>
<script src="{DEMO_ASSETS}/demo.js"></script>
</body>
</html>
"""

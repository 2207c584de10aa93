"""How a board photographs: the appearance model shared by the procedural boards and the Gerber renders.

:func:`paint` turns hard per-class layers into a photo-like RGB image (soldermask, copper under
it, pad finish, silkscreen, drills, component bodies, relief, uneven light, glints);
:func:`camera` adds a slight rotation and perspective, and :func:`sensor` blur, noise and JPEG.
Nothing here moves a pixel between layers and labels except :func:`camera`, which warps both.
``look="photo"`` adds what real photos show beyond that (:mod:`.scene`): ink no file holds,
oblique views, lens distortion, glare, exposure and white balance.

Example:
    >>> import numpy as np
    >>> layers = BoardLayers((32, 48))
    >>> layers.pad[8:16, 8:24] = 1
    >>> img = paint(layers, px_per_mm=10.0, rng=np.random.default_rng(0))
    >>> img.shape, img.dtype.name
    ((32, 48, 3), 'float32')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pcbseg.data.synth.scene import backdrop, check_look, expose, glare, lens, stray_ink

# RGB in 0..1. Soldermask colours as they photograph, not as named.
MASK_COLOURS = {
    "green": (0.08, 0.36, 0.16),
    "darkgreen": (0.05, 0.22, 0.11),
    "blue": (0.06, 0.17, 0.45),
    "red": (0.55, 0.07, 0.07),
    "black": (0.07, 0.07, 0.08),
    "white": (0.86, 0.86, 0.83),
    "purple": (0.30, 0.11, 0.42),
}
FINISHES = {
    "hasl": (0.80, 0.80, 0.80),
    "enig": (0.85, 0.68, 0.35),
    "copper": (0.80, 0.47, 0.30),
}
COPPER = np.array((0.80, 0.50, 0.28), np.float32)


@dataclass
class BoardLayers:
    """Hard 0/1 layers in canvas pixels; the label map and the image are both painted from these."""

    size: int | tuple[int, int]  # side of a square canvas, or (height, width)
    trace: np.ndarray = field(init=False)  # copper under soldermask (traces, pours)
    via: np.ndarray = field(init=False)  # via annular rings
    via_drill: np.ndarray = field(init=False)
    pad: np.ndarray = field(init=False)  # exposed copper: SMD and through-hole pads
    hole: np.ndarray = field(init=False)  # through-hole pad drills, mounting holes
    screw: np.ndarray = field(init=False)
    silk: np.ndarray = field(init=False)
    keepout: np.ndarray = field(init=False)  # where a copper pour must leave clearance

    def __post_init__(self) -> None:
        for name in ("trace", "via", "via_drill", "pad", "hole", "screw", "silk", "keepout"):
            shape = (self.size, self.size) if isinstance(self.size, int) else self.size
            setattr(self, name, np.zeros(shape, np.uint8))



def jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
    c = np.clip(np.asarray(rgb) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)
    return (float(c[0]), float(c[1]), float(c[2]))



def smooth_field(rng: np.random.Generator, size: int | tuple[int, int], cells: int, dtype=np.float32) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled smoothly to ``size`` (side, or (h, w))."""
    h, w = (size, size) if isinstance(size, int) else size
    grid = rng.random((cells, cells)).astype(dtype)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def soft(layer: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(layer.astype(np.float32), (0, 0), sigma)



def paint(layers: BoardLayers, px_per_mm: float, rng: np.random.Generator, comp_alpha: np.ndarray | None = None,
          comp_rgb: np.ndarray | None = None, comp_metal: np.ndarray | None = None,
          tented: bool | None = None, look: str = "classic", behind: np.ndarray | None = None) -> np.ndarray:
    """Paint a photo-like RGB float image in [0, 1] from a board's layers (any height and width).

    Soldermask over copper, exposed pad finish, silkscreen, drills, component bodies (``comp_alpha``
    0/1, ``comp_rgb`` colour, ``comp_metal`` shiny parts), relief and uneven light. ``tented``
    covers the ``via`` layer with soldermask (None: drawn at random, 55% tented). The procedural
    boards and the Gerber renders are both painted here, so they look alike. ``look="photo"``
    adds lot codes, stamps and marker dots that no layer holds (left unlabelled, as on real boards),
    narrow copper under the mask as a lit, raised line, and drilled holes that show the surface the
    board lies on: ``behind`` (float RGB, the image's shape), or a drawn backdrop when None.
    """
    check_look(look)
    L, ppm = layers, px_per_mm
    shape = L.trace.shape
    zeros = np.zeros(shape, np.uint8)
    comp_alpha = zeros if comp_alpha is None else comp_alpha
    comp_rgb = np.zeros((*shape, 3), np.float32) if comp_rgb is None else comp_rgb
    comp_metal = zeros if comp_metal is None else comp_metal
    s = max(shape)
    mask_name = str(rng.choice(list(MASK_COLOURS), p=[0.34, 0.1, 0.18, 0.1, 0.1, 0.08, 0.1]))
    mask_rgb = np.array(jitter(rng, MASK_COLOURS[mask_name], 0.12), np.float32)
    finish = np.array(jitter(rng, FINISHES[str(rng.choice(list(FINISHES), p=[0.45, 0.4, 0.15]))], 0.06), np.float32)
    silk_rgb = np.array((0.08, 0.08, 0.08) if mask_name == "white" else
                        jitter(rng, (0.93, 0.93, 0.9) if rng.random() < 0.85 else (0.9, 0.85, 0.4), 0.04), np.float32)

    edge = max(0.45, ppm * 0.04)  # how soft copper and print edges are, in px
    img = np.empty((*shape, 3), np.float32)
    img[:] = mask_rgb * (0.9 + 0.2 * smooth_field(rng, shape, 6))[..., None]
    img += (rng.standard_normal((*shape, 1)).astype(np.float32) * 0.012)  # mask texture

    # Copper under the mask shows as a lighter, warmer tint and stands slightly proud.
    if look == "photo":
        # Measured on the registered shared photos (14, six boards, five mask colours): copper under the
        # mask is the mask's own colour 0.9-1.5x as bright (1.1-1.3 typically) with little change of hue,
        # far subtler than the classic copper blend; on dark masks a small lift shows it.
        gain = rng.uniform(0.95, 1.6) * (1 + rng.uniform(-0.12, 0.12, 3))
        under = (mask_rgb * gain + rng.uniform(0.0, 0.04)).astype(np.float32)
    else:
        under = mask_rgb * rng.uniform(0.55, 0.75) + COPPER * rng.uniform(0.15, 0.3) + rng.uniform(0.02, 0.08)
    drawn = rng.random() < 0.55  # drawn even when given, so a seed paints the same board either way
    tented = drawn if tented is None else tented
    copper = L.trace | (L.via if tented else 0)
    a = soft(copper, edge)[..., None]
    img = img * (1 - a) + under * a
    if look == "photo":
        # Narrow copper catches the light: on the registered photos thin traces are a warm lift of +0.03 to +0.39
        # (R >= G > B) over the bare mask beside them, while pour interiors are not. So the copper's rim, all of a
        # trace up to 0.4 mm wide, gets it; the models had called the photos' bright thin traces silkscreen.
        r = max(1, round(ppm * 0.2))
        core = cv2.erode(copper, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        tint = np.float32((1.0, 0.8, 0.55)) * (1 + rng.uniform(-0.1, 0.1, 3)).astype(np.float32)
        img += soft(copper - core, edge)[..., None] * (0.4 * rng.random() ** 1.7) * tint

    # Exposed metal: pads, and via rings unless the vias are tented.
    metal = L.pad | (0 if tented else L.via)
    grain = 1 + 0.12 * (smooth_field(rng, shape, max(4, s // 6)) - 0.5)
    a = soft(metal, edge)[..., None]
    img = img * (1 - a) + (finish * grain[..., None]) * a

    # Relief: light from one side on a blurred height map.
    height = soft(copper * 0.6 + metal + L.silk * 0.4, max(1.0, ppm * 0.08))
    gy, gx = np.gradient(height)
    ang = rng.uniform(0, 2 * math.pi)
    img += (gx * math.cos(ang) + gy * math.sin(ang))[..., None] * rng.uniform(0.3, 0.7)

    a = soft(L.silk, edge * 0.8)[..., None] * rng.uniform(0.8, 0.97)
    img = img * (1 - a) + silk_rgb * a

    # Screws: a metal head with a cross recess.
    a = soft(L.screw, edge)[..., None]
    screw_rgb = np.array(jitter(rng, (0.62, 0.62, 0.64), 0.1), np.float32)
    img = img * (1 - a) + screw_rgb * (0.85 + 0.3 * smooth_field(rng, shape, 5))[..., None] * a
    if L.screw.any():
        cross = cv2.morphologyEx(L.screw, cv2.MORPH_ERODE, np.ones((max(3, int(ppm)), max(3, int(ppm))), np.uint8))
        bar = max(1, int(ppm * 0.35))
        slot = cv2.erode(cross, np.ones((1, bar * 6), np.uint8)) | cv2.erode(cross, np.ones((bar * 6, 1), np.uint8))
        slot = cv2.dilate(slot, np.ones((bar, bar), np.uint8)) & cross
        img *= (1 - 0.6 * soft(slot, 0.7))[..., None]

    # A tented via's drill shows as a dimple in the mask; open drills go through the board: dark.
    if tented:
        img *= (1 - rng.uniform(0.25, 0.45) * soft(L.via_drill, edge))[..., None]
    holes = L.hole | (0 if tented else L.via_drill)
    a = soft(holes, edge * 0.8)[..., None]
    depth = np.array(jitter(rng, (0.05, 0.05, 0.05), 0.5), np.float32)
    if look == "photo" and holes.any():
        # A drill goes through the board: the photos' holes show what the board lies on (median brightness 0.2 to
        # 0.84 over the 14 registered photos, near black in none), shaded, inside a dark wall.
        if behind is None:
            behind = backdrop(rng, shape, px_per_mm=ppm)
        wall = np.clip(cv2.distanceTransform(holes, cv2.DIST_L2, 3) / max(1.0, ppm * rng.uniform(0.05, 0.25)), 0, 1)
        see = (wall * rng.uniform(0.45, 1.0))[..., None]
        img = img * (1 - a) + (depth * (1 - see) + behind * see) * a
    else:
        img = img * (1 - a) + depth * a

    # Components: soft contact shadow, then the bodies with a bevel and their own light.
    shadow = np.roll(comp_alpha, (int(ppm * 0.25), int(ppm * 0.3)), axis=(0, 1))
    img *= (1 - 0.55 * soft(shadow, max(1.0, ppm * 0.35)))[..., None]
    if comp_alpha.any():
        dist = cv2.distanceTransform(comp_alpha, cv2.DIST_L2, 3)
        bevel = 0.75 + 0.25 * np.clip(dist / max(1.0, ppm * 0.25), 0, 1)
        comp = comp_rgb * bevel[..., None] * (0.9 + 0.2 * smooth_field(rng, shape, 8))[..., None]
        comp += rng.standard_normal((*shape, 1)).astype(np.float32) * 0.015
        a = soft(comp_alpha, edge * 0.7)[..., None]
        img = img * (1 - a) + comp * a

    # Uneven light: a tilted plane and a vignette, multiplied in.
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32) / s - 0.5
    ang = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0.1, 0.4) * (xx * math.cos(ang) + yy * math.sin(ang)) - rng.uniform(0, 0.5) * (xx**2 + yy**2)
    img *= (light * rng.uniform(0.85, 1.15))[..., None]

    # Glints where metal catches the light.
    shiny = (metal | comp_metal | L.screw).astype(np.float32)
    t = rng.uniform(0.55, 0.8)
    glint = np.clip((smooth_field(rng, shape, max(6, s // 10)) - t) / (1 - t), 0, 1) ** 2
    img += (glint * shiny * rng.uniform(0.4, 0.9))[..., None]
    if look == "photo":
        img = stray_ink(rng, img, ppm, skip=holes | comp_alpha | L.screw)
    return img



def camera(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, out: int, ignore: int,
           look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """Small rotation/perspective of a square canvas, centre crop to ``out``, then blur, sensor noise and JPEG.

    ``look="photo"``: sometimes an oblique view (up to 8% corner shifts) and lens distortion too,
    and :func:`sensor`'s photo effects. Labels follow every warp, by nearest neighbour.
    """
    img, lab = geometry(rng, img, lab, out, ignore, look)
    return sensor(rng, img, look), lab


def geometry(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, out: int, ignore: int,
             look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """:func:`camera`'s warps alone: image (float) and labels moved alike, cropped to ``out``."""
    s = img.shape[0]
    m = (s - out) / 2
    src = np.float32([[m, m], [m + out, m], [m + out, m + out], [m, m + out]])
    ang = math.radians(rng.uniform(-4, 4))
    c = s / 2
    rot = np.float32([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    src = (src - c) @ rot.T + c + rng.uniform(-0.025, 0.025, (4, 2)).astype(np.float32) * out
    if check_look(look) == "photo" and rng.random() < 0.3:  # seen at an angle, as phones often do
        src = src + rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * out
    dst = np.float32([[0, 0], [out, 0], [out, out], [0, out]])
    h = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, h, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpPerspective(lab, h, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=ignore)
    if look == "photo" and rng.random() < 0.5:
        img, lab = lens(rng, img, lab, ignore)
    return img, lab



def sensor(rng: np.random.Generator, img: np.ndarray, look: str = "classic") -> np.ndarray:
    """Lens blur, sensor noise, sometimes a monochrome camera, and JPEG artefacts: float RGB -> uint8.

    ``look="photo"`` first adds a glare band (40% of photos) and draws exposure and white balance.
    """
    if check_look(look) == "photo":
        if rng.random() < 0.4:
            img = img + glare(rng, img.shape[:2])[..., None]
        img = expose(rng, img)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(0.004, 0.03)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * noise
    if rng.random() < 0.1:  # monochrome industrial camera
        img[:] = img.mean(axis=2, keepdims=True)
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < 0.7:
        q = int(rng.integers(40, 96))
        _, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(rgb)


"""``tusk detect RUN_DIR IMAGE... --out DIR``: keypoints of a trained run on image files."""
from __future__ import annotations

import argparse
import json
import os

from .common import parse_device, reporting_errors
from .image_files import load_image, output_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("detect", help="detect keypoints in image files with a trained run",
                            description="Detect keypoints with a trained run. Each image is resized to the "
                                        "training resolution; keypoints are reported in the original "
                                        "image's pixel coordinates (x, y; pixel centres at integers). "
                                        "Writes <name>.png (keypoints coloured by prototype) and "
                                        "detections.json into --out; inputs sharing a name get "
                                        "<name>-2.png, <name>-3.png, ... (the JSON says which). 16-bit "
                                        "images are scaled by their bit depth.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `tusk train`")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--threshold", type=float, help="mark keypoints scoring below this invalid")
    parser.set_defaults(func=run)


@reporting_errors
def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    from .. import ops
    from ..training import load_run
    from ..training.visualize import draw_keypoints, prototype_colours, save_png, to_uint8

    device = torch.device(parse_device(args.device))
    config, model, state = load_run(args.run_dir, device)
    if args.threshold is not None:
        model.config.threshold = args.threshold
    height, width = state.get("image_size") or (config.data.image_size,) * 2
    pictures = [(path, load_image(path)) for path in args.images]  # fail before writing anything
    names = output_names(args.images)
    os.makedirs(args.out, exist_ok=True)
    colours = prototype_colours(config.model.prototypes)
    results = []
    with torch.no_grad(), ops.use_backend(config.train.backend):
        for (path, image), name in zip(pictures, names):
            original = tuple(image.shape[-2:])
            resized = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False,
                                    antialias=True).clamp(0, 1).to(device)
            out = model(resized)
            xy = out.xy[0].cpu().double()
            # Back to the original image: x -> (x + 0.5) * W0 / W - 0.5 (pixel centres at integers).
            xy[:, 0] = (xy[:, 0] + 0.5) * original[1] / width - 0.5
            xy[:, 1] = (xy[:, 1] + 0.5) * original[0] / height - 0.5
            labels, valid, scores = out.labels[0].cpu(), out.valid[0].cpu(), out.scores[0].cpu()
            scale = max(1, 320 // max(original))
            picture = draw_keypoints(to_uint8(image), xy.numpy(), labels.numpy(), valid.numpy(), colours, scale)
            save_png(picture, os.path.join(args.out, name))
            results.append({
                "image": path,
                "picture": name,
                "size": list(original),
                "keypoints": [
                    {"x": float(p[0]), "y": float(p[1]), "score": float(s), "valid": bool(v), "prototype": int(m)}
                    for p, s, v, m in zip(xy.tolist(), scores.tolist(), valid.tolist(), labels.tolist())
                ],
            })
    with open(os.path.join(args.out, "detections.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    for result in results:
        found = sum(k["valid"] for k in result["keypoints"])
        print(f"{result['image']}: {found} keypoints")
    print(f"pictures and detections.json written to {args.out}")
    return 0

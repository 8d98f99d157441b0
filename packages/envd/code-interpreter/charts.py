# A matplotlib figure as E2B's `chart` result: the type (line, scatter, bar, pie,
# box_and_whisker, superchart for several axes, unknown), title, axis labels, units taken from
# "Label (unit)", scales, ticks and the plotted elements, read from the figure's artists.
import re

from matplotlib.collections import PathCollection
from matplotlib.dates import num2date
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch, Rectangle, Wedge
from matplotlib.text import Text


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return int(f) if f.is_integer() else round(f, 6)


def _unit(label: str):
    m = re.search(r"\(([^()]+)\)\s*$", label or "") or re.search(r"\[([^\[\]]+)\]\s*$", label or "")
    return m.group(1) if m else None


def _scale(ax, axis: str) -> str:
    converter = (ax.xaxis if axis == "x" else ax.yaxis).get_converter() if hasattr(ax.xaxis, "get_converter") else getattr(ax.xaxis if axis == "x" else ax.yaxis, "converter", None)
    name = type(converter).__name__.lower() if converter is not None else ""
    if "date" in name:
        return "datetime"
    if "categor" in name or "str" in name:
        return "categorical"
    return ax.get_xscale() if axis == "x" else ax.get_yscale()


def _value(v, scale: str):
    if scale == "datetime":
        try:
            return num2date(float(v)).isoformat()
        except Exception:
            return str(v)
    return _num(v)


def _is_grid(line: Line2D) -> bool:
    x, y = line.get_xdata(), line.get_ydata()
    return len(x) == 2 and len(y) == 2 and (x[0] == x[1] or y[0] == y[1])


def _kind(ax) -> str:
    objects = [o for o in ax.get_children() if not isinstance(o, Text) and o in ax._children]
    if objects and all(isinstance(o, Line2D) for o in objects):
        return "line"
    if objects and all(isinstance(o, (PathPatch, Line2D)) for o in objects):
        return "box_and_whisker"
    objects = [o for o in objects if not (isinstance(o, Line2D) and _is_grid(o))]
    if objects and all(isinstance(o, PathCollection) for o in objects):
        return "scatter"
    if objects and all(isinstance(o, Wedge) for o in objects):
        return "pie"
    if objects and all(isinstance(o, Rectangle) for o in objects):
        return "bar"
    return "unknown"


def _axes_info(ax) -> dict:
    x_label, y_label = ax.get_xlabel(), ax.get_ylabel()
    x_scale, y_scale = _scale(ax, "x"), _scale(ax, "y")
    return {
        "x_label": x_label or None,
        "y_label": y_label or None,
        "x_unit": _unit(x_label),
        "y_unit": _unit(y_label),
        "x_scale": x_scale,
        "y_scale": y_scale,
        "x_ticks": [_value(t, x_scale) for t in ax.get_xticks()],
        "y_ticks": [_value(t, y_scale) for t in ax.get_yticks()],
        "x_tick_labels": [t.get_text() for t in ax.get_xticklabels()],
        "y_tick_labels": [t.get_text() for t in ax.get_yticklabels()],
    }


def _chart_of_axes(ax) -> dict:
    kind = _kind(ax)
    chart = {"type": kind, "title": ax.get_title() or None, "elements": []}
    if kind == "line":
        chart.update(_axes_info(ax))
        for line in ax.get_lines():
            label = line.get_label()
            chart["elements"].append(
                {
                    "label": label,
                    "points": [
                        [_value(x, chart["x_scale"]), _value(y, chart["y_scale"])]
                        for x, y in zip(line.get_xdata(orig=False), line.get_ydata(orig=False))
                    ],
                }
            )
    elif kind == "scatter":
        chart.update(_axes_info(ax))
        for coll in ax.collections:
            chart["elements"].append(
                {
                    "label": coll.get_label(),
                    "points": [[_value(x, chart["x_scale"]), _value(y, chart["y_scale"])] for x, y in coll.get_offsets()],
                }
            )
    elif kind == "bar":
        info = _axes_info(ax)
        chart.update({k: info[k] for k in ("x_label", "y_label", "x_unit", "y_unit")})
        labels = [t.get_text() for t in ax.get_xticklabels()]
        ticks = list(ax.get_xticks())
        for container in ax.containers:
            group = container.get_label()
            for patch in container.patches:
                center = patch.get_x() + patch.get_width() / 2
                near = min(range(len(ticks)), key=lambda i: abs(ticks[i] - center)) if ticks else None
                label = labels[near] if near is not None and near < len(labels) else str(_num(center))
                chart["elements"].append({"label": label, "group": group, "value": _num(patch.get_height())})
    elif kind == "pie":
        texts = [t.get_text() for t in ax.texts]
        wedges = [w for w in ax.patches if isinstance(w, Wedge)]
        for i, w in enumerate(wedges):
            chart["elements"].append(
                {
                    "label": w.get_label() or (texts[i] if i < len(texts) else ""),
                    "angle": _num(round(abs(w.theta2 - w.theta1), 4)),
                    "radius": _num(w.r),
                }
            )
    elif kind == "box_and_whisker":
        info = _axes_info(ax)
        chart.update({k: info[k] for k in ("x_label", "y_label", "x_unit", "y_unit")})
        labels = [t.get_text() for t in ax.get_xticklabels()]
        boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
        # boxplot(patch_artist=True) draws per box, in order: two whiskers, two caps, the median
        # line and the outliers (fliers) as Line2D objects.
        lines = list(ax.get_lines())
        per_box = len(lines) // len(boxes) if boxes else 0
        for i, box in enumerate(boxes):
            ys = box.get_path().vertices[:, 1]
            element = {
                "label": labels[i] if i < len(labels) else str(i),
                "first_quartile": _num(min(ys)),
                "third_quartile": _num(max(ys)),
            }
            if per_box >= 6:
                w1, w2, c1, c2, median, fliers = lines[i * per_box : i * per_box + 6]
                caps = [float(c1.get_ydata()[0]), float(c2.get_ydata()[0])]
                element.update(
                    {
                        "min": _num(min(caps)),
                        "max": _num(max(caps)),
                        "median": _num(median.get_ydata()[0]),
                        "outliers": [_num(v) for v in fliers.get_ydata()],
                    }
                )
            chart["elements"].append(element)
    return chart


def figure_to_chart(figure) -> dict:
    axes = [ax for ax in figure.get_axes() if ax.has_data()]
    if not axes:
        return {}
    if len(figure.get_axes()) > 1:
        title = figure._suptitle.get_text() if getattr(figure, "_suptitle", None) else None
        return {"type": "superchart", "title": title, "elements": [_chart_of_axes(ax) for ax in figure.get_axes()]}
    return _chart_of_axes(axes[0])

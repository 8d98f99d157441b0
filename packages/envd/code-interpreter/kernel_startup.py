# Run in every Python kernel of the code-interpreter server at start (IPKernelApp.exec_files):
# registers the two mime types E2B's results carry beyond Jupyter's own: `e2b/data` (a pandas
# DataFrame as columns) and `e2b/chart` (a matplotlib figure's data, see charts.py). Both only
# look at objects of modules the cell already imported, so `1+1` pays no pandas import.
import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)) if "__file__" in globals() else "/opt/wrenn/envd/code-interpreter")


def _wrenn_formatters():
    import IPython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class DataFormatter(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict, str)

        def __call__(self, obj):
            pandas = _sys.modules.get("pandas")
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return super().__call__(obj)
            import json

            # pandas' own JSON writer turns numpy values, NaN and timestamps into plain JSON;
            # E2B's shape is column -> list of values.
            columns = json.loads(obj.to_json(orient="columns", date_format="iso"))
            return {str(k): list(v.values()) for k, v in columns.items()}

    class ChartFormatter(BaseFormatter):
        format_type = Unicode("e2b/chart")
        print_method = ObjectName("_repr_e2b_chart_")
        _return_type = (dict, str)

        def __call__(self, obj):
            if _sys.modules.get("matplotlib") is None:
                return super().__call__(obj)
            from matplotlib.figure import Figure

            if not isinstance(obj, Figure):
                return super().__call__(obj)
            from charts import figure_to_chart

            try:
                return figure_to_chart(obj)
            except Exception:
                return {}

    ip = IPython.get_ipython()
    if ip is None:
        return
    formatters = ip.display_formatter.formatters
    formatters["e2b/data"] = DataFormatter(parent=ip.display_formatter)
    formatters["e2b/chart"] = ChartFormatter(parent=ip.display_formatter)


def _wrenn_show_saved_images():
    # As E2B's kernels do: an image saved to a file is also shown (a result with its png).
    from IPython.display import display
    from PIL.Image import Image

    save = Image.save

    def save_and_show(image, fp, format=None, **options):
        if isinstance(fp, str):
            display(image)
        return save(image, fp, format, **options)

    Image.save = save_and_show


_wrenn_formatters()
try:
    _wrenn_show_saved_images()
except ImportError:
    pass
del _wrenn_formatters, _wrenn_show_saved_images

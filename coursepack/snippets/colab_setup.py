# Google Colab only: install what a stock Colab runtime lacks. Elsewhere this cell does nothing.
import importlib.util
import subprocess
import sys

RUNTIME_REQUIREMENTS = {"torch": "torch>=2.3", "matplotlib": "matplotlib>=3.8", "sympy": "sympy>=1.12",
                        "tqdm": "tqdm>=4.66"}

if "google.colab" in sys.modules:
    missing = [spec for module, spec in RUNTIME_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)

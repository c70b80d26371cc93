"""Packaging for cosmos-upsample-fix."""
from setuptools import find_packages, setup

setup(
    name="cosmos-upsample-fix",
    version="0.2.0",  # the one place the version is written; cosmos_upsample_fix.__version__ reads it
    description=(
        "Makes Cosmos-Transfer1's --upsample_prompt fit vLLM's context: exact token budgeting "
        "and budget-fitting frame downsampling for the Pixtral prompt upsampler."
    ),
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # every layer's subpackage; the patch files ship as package data of cosmos_upsample_fix.patching.patches
    packages=find_packages(include=["cosmos_upsample_fix", "cosmos_upsample_fix.*"]),
    package_data={"cosmos_upsample_fix.patching.patches": ["*.patch"], "cosmos_upsample_fix": ["py.typed"]},
    install_requires=[
        "av>=14",  # Cosmos-Transfer1's Docker image pins av==14.2.0
        "numpy>=1.23",
        "pillow>=9.1",
        "mistral-common>=1.5.4",  # vLLM 0.8's floor; counting follows the installed version's rules
        "packaging>=21",
    ],
    extras_require={
        "test": [
            "pytest>=7", "pytest-xdist>=3", "hypothesis>=6.80", "opencv-python-headless>=4.8",
            "ruff>=0.5", "mypy>=1.10", "openai>=1.52",
        ],
        # endpoint mode (--endpoint / install(endpoint=...)): the official OpenAI client. vLLM depends on
        # it (>=1.52 since 0.8), so every Cosmos environment already has it; tested with 1.52.2 and 3.63.0
        "openai": ["openai>=1.52"],
        # mistral_common needs OpenCV to tokenize images (the demo's and tests' exact cross-check)
        "demo": ["opencv-python-headless>=4.8"],
        "bench": ["opencv-python-headless>=4.8", "openai>=1.52"],  # the endpoint rows of benchmarks/offload.py
        # the documentation site (docs/, mkdocs.yml; built with `mkdocs build --strict` in CI)
        "docs": ["mkdocs>=1.6,<2"],
    },
    entry_points={
        "console_scripts": ["cosmos-upsample-fix=cosmos_upsample_fix.tools.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)

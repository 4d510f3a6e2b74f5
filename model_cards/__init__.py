"""Jinja templates of the model cards hf-ssl writes (shipped as package data: `hf_ssl.model_cards`)."""

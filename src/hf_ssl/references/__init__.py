"""Independent reference implementations that `hf-ssl benchmark --reference` trains beside a method, where the
reference is a whole training program rather than a model to step on the method's batch (`Method.reference_training`).
Not model code: nothing here is carried into an exported folder."""

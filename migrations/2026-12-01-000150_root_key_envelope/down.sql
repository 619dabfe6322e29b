DROP TABLE key_envelope;

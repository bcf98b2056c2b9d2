package io.ptune;

/**
 * A model directory is missing files, or a file in it (config.json, tokenizer.json, safetensors) is
 * malformed or describes something ptune does not support.
 */
public class ModelFormatException extends PtuneException {
    private static final long serialVersionUID = 1L;

    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}

package io.ptune;

/**
 * A prompt adapter cannot be used: missing or malformed adapter files, an unsupported PEFT method,
 * or a shape that does not fit the model it is applied to.
 */
public class AdapterException extends PtuneException {
    private static final long serialVersionUID = 1L;

    public AdapterException(String message) {
        super(message);
    }

    public AdapterException(String message, Throwable cause) {
        super(message, cause);
    }
}

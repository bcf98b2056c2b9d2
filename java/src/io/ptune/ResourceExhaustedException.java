package io.ptune;

/**
 * The machine ran out of memory (or another resource) for a native computation. Nothing of the
 * failed call is kept and the loaded model stays usable: retry with a smaller {@code --batch-size}
 * or {@code --max-length} (or fewer new tokens), or free memory.
 */
public class ResourceExhaustedException extends PtuneException {
    private static final long serialVersionUID = 1L;

    public ResourceExhaustedException(String message) {
        super(message);
    }

    public ResourceExhaustedException(String message, Throwable cause) {
        super(message, cause);
    }
}

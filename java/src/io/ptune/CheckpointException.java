package io.ptune;

/**
 * A training checkpoint cannot be used: it is missing, damaged (a file truncated, changed or
 * absent, against the sizes and SHA-256 sums of its manifest), or was written by another ptune
 * version. {@code --resume} skips such a checkpoint with a warning and uses the one before;
 * {@code --resume-from} on exactly that checkpoint fails with this exception.
 */
public class CheckpointException extends PtuneException {
    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}

package io.ptune;

/**
 * The training loss became NaN or infinite. Continuing would only write a broken adapter, so the
 * run stops; usually a lower learning rate or a smaller max gradient norm fixes it.
 */
public class TrainingDivergedException extends PtuneException {
    private static final long serialVersionUID = 1L;

    private final long step;
    private final double loss;

    public TrainingDivergedException(long step, double loss) {
        super("training diverged at optimizer step " + step + ": the loss or gradient norm is " + loss
                + "; lower the learning rate (--lr) or the max gradient norm (--max-grad-norm)"
                + " and start again (or --on-nonfinite skip to drop such steps)");
        this.step = step;
        this.loss = loss;
    }

    /**
     * {@code --on-nonfinite skip} gave up: {@code inARow} accumulation cycles in a row had a NaN or
     * infinite loss or gradient norm, the last at {@code step}.
     */
    public TrainingDivergedException(long step, double value, int inARow) {
        super(inARow + " accumulation cycles in a row had a NaN or infinite loss or gradient (the last, before"
                + " optimizer step " + step + ": " + value + "); lower the learning rate (--lr) or the max"
                + " gradient norm (--max-grad-norm), check the data, or raise --max-nonfinite");
        this.step = step;
        this.loss = value;
    }

    /** The optimizer step (1-based) whose loss was not finite. */
    public long step() {
        return step;
    }

    /** The non-finite loss value (NaN or +/-infinity). */
    public double loss() {
        return loss;
    }
}

package io.ptune.train;

/** The dev-set metric that early stopping and the kept prompt go by. */
public enum DevMetric {
    /** Mean loss per label token (causal LM) or per example (classification); lower is better. */
    DEV_LOSS(false),
    /** Classification accuracy; higher is better. */
    ACCURACY(true),
    /** Classification macro-averaged F1; higher is better. */
    MACRO_F1(true);

    private final boolean higherIsBetter;

    DevMetric(boolean higherIsBetter) {
        this.higherIsBetter = higherIsBetter;
    }

    public boolean higherIsBetter() {
        return higherIsBetter;
    }

    /** Whether {@code candidate} beats {@code best} (NaN never does; anything beats NaN). */
    public boolean improves(double candidate, double best) {
        if (Double.isNaN(candidate)) {
            return false;
        }
        if (Double.isNaN(best)) {
            return true;
        }
        return higherIsBetter ? candidate > best : candidate < best;
    }

    /**
     * The key of this metric in {@link TrainingListener#onDev} maps and metrics files:
     * {@code dev_loss}, {@code dev_accuracy}, {@code dev_macro_f1}.
     */
    public String devKey() {
        return this == DEV_LOSS ? "dev_loss" : "dev_" + columnName();
    }

    /** The name in metrics files and sweep tables: {@code dev_loss}, {@code accuracy}, {@code macro_f1}. */
    public String columnName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}

package io.ptune.report;

import io.ptune.PtuneException;
import io.ptune.train.StepMetrics;
import io.ptune.train.TrainingListener;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The curves of a training run, as PNGs beside the adapter. Add it to a trainer as a
 * {@link TrainingListener} (every optimizer step), report dev evaluations with {@link #onDev},
 * and call {@link #write} at the end:
 *
 * <ul>
 *   <li>{@value #LOSS_FILE}: the training loss of every step (faint), its smoothed curve (an
 *       exponential moving average, debiased as TensorBoard's, whose span grows with the run: about
 *       a tenth of the steps, between 1 and 200), and the dev loss when there is one;
 *   <li>{@value #LEARNING_RATE_FILE}: the learning rate of every step;
 *   <li>{@value #DEV_METRICS_FILE}: every dev metric other than losses (accuracy, macro-F1, …),
 *       when there is one;
 *   <li>{@value #CONFUSION_FILE}: the dev set's confusion matrix ({@link ConfusionMatrixPlot}) when
 *       a classification run reported one with {@link #confusionMatrix}.
 * </ul>
 *
 * The last two are written only when there is data for them; otherwise the files of an earlier run
 * in the same folder are removed, so that the folder never shows another run's charts.
 *
 * Steps with a NaN or infinite loss are left out of the curves (the smoothing skips them). A run
 * resumed from a checkpoint plots the steps it made itself. Thread-safe: the trainer's thread may
 * report steps while another reports dev points.
 */
public final class TrainingPlots implements TrainingListener {
    private static final Logger LOG = LoggerFactory.getLogger(TrainingPlots.class);

    public static final String LOSS_FILE = "loss.png";
    public static final String LEARNING_RATE_FILE = "learning_rate.png";
    public static final String DEV_METRICS_FILE = "dev_metrics.png";
    public static final String CONFUSION_FILE = "confusion_matrix.png";

    private final Points loss = new Points();
    private final Points learningRate = new Points();
    /** Dev metric name -> its points, in the order the names were first reported. */
    private final Map<String, Points> dev = new LinkedHashMap<>();
    private List<String> labels;
    private long[][] confusion;

    @Override
    public synchronized void onStep(StepMetrics metrics) {
        loss.add(metrics.step(), metrics.loss());
        learningRate.add(metrics.step(), metrics.learningRate());
    }

    /**
     * A dev evaluation after optimizer step {@code step}: names such as {@code dev_loss},
     * {@code dev_accuracy}, {@code dev_macro_f1}. Names containing "loss" go on the loss chart,
     * the others on the dev-metrics chart.
     */
    public synchronized void onDev(long step, Map<String, Double> metrics) {
        Objects.requireNonNull(metrics, "metrics");
        metrics.forEach((name, value) -> {
            Objects.requireNonNull(name, "metric name");
            dev.computeIfAbsent(name, k -> new Points()).add(step, value == null ? Double.NaN : value);
        });
    }

    /**
     * The dev set's confusion matrix at the end of training ({@code confusion[true][predicted]},
     * one row and column per label), drawn by {@link #write}; a later call replaces it.
     */
    public synchronized void confusionMatrix(List<String> labels, long[][] confusion) {
        this.labels = List.copyOf(labels);
        this.confusion = Arrays.stream(confusion).map(long[]::clone).toArray(long[][]::new);
    }

    /**
     * Writes the charts into {@code dir} (created if missing) and returns the files written.
     *
     * @throws PtuneException naming the file when one cannot be written
     */
    public synchronized List<Path> write(Path dir) {
        List<Path> written = new ArrayList<>();
        Path lossFile = dir.resolve(LOSS_FILE);
        LineChart.write(lossFile, "Training loss", "optimizer step", "loss", false, lossSeries());
        written.add(lossFile);
        Path lrFile = dir.resolve(LEARNING_RATE_FILE);
        LineChart.write(lrFile, "Learning rate", "optimizer step", "learning rate", false,
                List.of(new LineChart.Series("learning rate", learningRate.steps(), learningRate.values())));
        written.add(lrFile);
        List<LineChart.Series> metrics = new ArrayList<>();
        dev.forEach((name, points) -> {
            if (!isLoss(name)) {
                metrics.add(new LineChart.Series(name.replace('_', ' '), points.steps(), points.values()));
            }
        });
        Path devFile = dir.resolve(DEV_METRICS_FILE);
        if (metrics.isEmpty()) {
            removeStale(devFile);
        } else {
            LineChart.write(devFile, "Dev metrics", "optimizer step", "value", false, metrics, scoreRange(metrics));
            written.add(devFile);
        }
        Path confusionFile = dir.resolve(CONFUSION_FILE);
        if (confusion == null) {
            removeStale(confusionFile);
        } else {
            ConfusionMatrixPlot.write(confusionFile, ConfusionMatrixPlot.title("Dev confusion matrix", confusion),
                    labels, confusion);
            written.add(confusionFile);
        }
        LOG.info("wrote {}", written);
        return written;
    }

    /**
     * For scores in [0, 1] (accuracy, F1): their range widened to at least 0.2 and to multiples
     * of 0.05 within [0, 1], so that a change of a point in the third decimal does not fill the
     * chart; null (fitted to the data) for other values.
     */
    static LineChart.YRange scoreRange(List<LineChart.Series> series) {
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (LineChart.Series s : series) {
            for (double v : s.y()) {
                if (Double.isFinite(v)) {
                    min = Math.min(min, v);
                    max = Math.max(max, v);
                }
            }
        }
        if (!(min >= 0 && max <= 1)) {
            return null;
        }
        double pad = Math.max(0.02, (0.2 - (max - min)) / 2);
        double lo = Math.max(0, Math.floor((min - pad) * 20) / 20);
        double hi = Math.min(1, Math.ceil((max + pad) * 20) / 20);
        return new LineChart.YRange(lo, Math.max(hi, lo + 0.05));
    }

    private static void removeStale(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            LOG.warn("could not remove the stale {}: {}", file, e.toString());
        }
    }

    private List<LineChart.Series> lossSeries() {
        List<LineChart.Series> series = new ArrayList<>();
        double[] steps = loss.steps();
        double[] values = loss.values();
        int span = smoothingSpan(values.length);
        if (span > 1) {
            series.add(new LineChart.Series("train loss (each step)", steps, values, LineChart.Line.FAINT));
            series.add(new LineChart.Series("train loss (EMA, span " + span + ")", steps, ema(values, span)));
        } else {
            series.add(new LineChart.Series("train loss", steps, values));
        }
        dev.forEach((name, points) -> {
            if (isLoss(name)) {
                series.add(new LineChart.Series(name.replace('_', ' '), points.steps(), points.values()));
            }
        });
        return series;
    }

    private static boolean isLoss(String name) {
        return name.contains("loss");
    }

    /** About a tenth of the steps, in [1, 200]: visible smoothing at every run length. */
    static int smoothingSpan(int steps) {
        return Math.max(1, Math.min(200, steps / 10));
    }

    /**
     * The exponential moving average with decay {@code 1 - 2/(span+1)} (pandas' span), debiased
     * (divided by {@code 1 - decay^k} after k finite values) so that it starts at the first value
     * instead of at 0. A non-finite value is skipped: its entry is NaN and the average goes on.
     */
    static double[] ema(double[] values, int span) {
        double decay = 1 - 2.0 / (span + 1);
        double[] out = new double[values.length];
        double average = 0;
        double weight = 0;
        for (int i = 0; i < values.length; i++) {
            if (!Double.isFinite(values[i])) {
                out[i] = Double.NaN;
                continue;
            }
            average = decay * average + (1 - decay) * values[i];
            weight = decay * weight + (1 - decay);
            out[i] = average / weight;
        }
        return out;
    }

    /** A growing (step, value) list in primitive arrays: thousands of steps cost kilobytes. */
    private static final class Points {
        private double[] steps = new double[64];
        private double[] values = new double[64];
        private int size;

        void add(long step, double value) {
            if (size == steps.length) {
                steps = Arrays.copyOf(steps, 2 * size);
                values = Arrays.copyOf(values, 2 * size);
            }
            steps[size] = step;
            values[size] = value;
            size++;
        }

        double[] steps() {
            return Arrays.copyOf(steps, size);
        }

        double[] values() {
            return Arrays.copyOf(values, size);
        }
    }
}

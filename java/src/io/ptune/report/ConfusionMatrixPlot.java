package io.ptune.report;

import java.awt.Color;
import java.awt.Font;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;
import org.knowm.xchart.style.HeatMapStyler;

/**
 * A confusion matrix as a PNG heat map ({@value Charts#WIDTH} px wide), drawn by XChart: true
 * classes down the left (the first at the top, as in scikit-learn's display), predicted classes
 * along the bottom, the count in every cell (darker for more). Readable from 2 to
 * about 20 classes: label names longer than {@value #MAX_LABEL} characters are shortened with an
 * ellipsis, and the predicted labels are turned 45° when they would not fit side by side.
 */
public final class ConfusionMatrixPlot {
    /** Longest label shown in full. */
    static final int MAX_LABEL = 18;

    /** White to a mid blue: black counts stay readable on the darkest cell. */
    private static final Color[] SCALE = {new Color(0xFFFFFF), new Color(0xC6DBEF), new Color(0x6BAED6)};

    private ConfusionMatrixPlot() {}

    /**
     * Draws {@code confusion} and writes the PNG to {@code png} (atomically, creating its folder).
     *
     * @param labels the classes, in index order
     * @param confusion counts, {@code [true][predicted]}, square with one row per label
     * @throws IllegalArgumentException if the matrix is not square over the labels or has a
     *     negative count
     * @throws io.ptune.PtuneException naming the file when it cannot be written
     */
    public static void write(Path png, String title, List<String> labels, long[][] confusion) {
        Charts.writePng(chart(title, labels, confusion), png);
    }

    /** "{@code what} (872 examples, accuracy 0.876)": a title that says what the counts are. */
    public static String title(String what, long[][] confusion) {
        long total = 0, correct = 0;
        for (int t = 0; t < confusion.length; t++) {
            for (int p = 0; p < confusion[t].length; p++) {
                total += confusion[t][p];
                correct += t == p ? confusion[t][p] : 0;
            }
        }
        return total == 0 ? what + " (no examples)" : String.format(Locale.ROOT,
                "%s (%,d examples, accuracy %.3f)", what, total, (double) correct / total);
    }

    /** The chart {@link #write} draws. */
    static HeatMapChart chart(String title, List<String> labels, long[][] confusion) {
        Objects.requireNonNull(labels, "labels");
        int k = labels.size();
        if (k == 0) {
            throw new IllegalArgumentException("a confusion matrix needs at least one class");
        }
        if (confusion.length != k) {
            throw new IllegalArgumentException("the confusion matrix has " + confusion.length + " rows for " + k
                    + " labels");
        }
        long max = 0;
        for (long[] row : confusion) {
            if (row.length != k) {
                throw new IllegalArgumentException("the confusion matrix has a row of " + row.length + " counts for "
                        + k + " labels");
            }
            for (long count : row) {
                if (count < 0) {
                    throw new IllegalArgumentException("the confusion matrix has a negative count " + count);
                }
                max = Math.max(max, count);
            }
        }
        List<String> shown = shortLabels(labels);
        boolean turned = k > 6 || shown.stream().mapToInt(String::length).max().orElse(0) * k > 60;
        int longest = shown.stream().mapToInt(String::length).max().orElse(0);
        // Room below the plot for turned labels, so the plot itself stays about square.
        int height = 620 + (turned ? 7 * longest : 0);
        HeatMapChart chart = new HeatMapChartBuilder().width(Charts.WIDTH).height(height).title(title)
                .xAxisTitle("predicted").yAxisTitle("true").build();
        HeatMapStyler styler = chart.getStyler();
        Charts.style(styler);
        // Every cell prints its count; XChart's colour bar would print its ends as 349.0 and take width.
        styler.setLegendVisible(false);
        styler.setPlotGridLinesVisible(false);
        styler.setRangeColors(SCALE);
        styler.setMin(0);
        styler.setMax(Math.max(1, max));
        styler.setShowValue(true);
        styler.setHeatMapValueDecimalPattern("#,##0");
        styler.setValueFontColor(Color.BLACK);
        styler.setValueFont(new Font(Font.SANS_SERIF, Font.BOLD, Math.max(10, Math.min(18, 24 - k))));
        styler.setDrawBorder(true);
        if (turned) {
            styler.setXAxisLabelRotation(45);
        }

        // XChart puts the first y category at the bottom; the first class belongs at the top.
        List<String> rows = new ArrayList<>(shown);
        Collections.reverse(rows);
        List<Number[]> cells = new ArrayList<>();
        for (int t = 0; t < k; t++) {
            for (int p = 0; p < k; p++) {
                cells.add(new Number[] {p, k - 1 - t, confusion[t][p]});
            }
        }
        chart.addSeries("count", shown, rows, cells);
        return chart;
    }

    /**
     * Labels cut to {@value #MAX_LABEL} characters (the start, an ellipsis, the end), kept distinct
     * (a repeat gets " #2", " #3", …).
     */
    static List<String> shortLabels(List<String> labels) {
        List<String> out = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < labels.size(); i++) {
            String label = Objects.requireNonNull(labels.get(i), "label").strip();
            int length = label.codePointCount(0, label.length());
            // Names of one family often differ at the end ("… review 3"): keep both ends.
            String s = length <= MAX_LABEL ? label
                    : label.substring(0, label.offsetByCodePoints(0, MAX_LABEL / 2)) + "…"
                            + label.substring(label.offsetByCodePoints(0, length - (MAX_LABEL - 1 - MAX_LABEL / 2)));
            if (s.isEmpty()) {
                s = "(empty)";
            }
            String unique = s;
            for (int n = 2; !seen.add(unique); n++) {
                unique = s + " #" + n;
            }
            out.add(unique);
        }
        return out;
    }
}

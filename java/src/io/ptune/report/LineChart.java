package io.ptune.report;

import java.awt.Color;
import java.awt.Font;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.function.Function;
import org.knowm.xchart.AnnotationTextPanel;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * A PNG line chart ({@value Charts#WIDTH}×{@value Charts#HEIGHT} px) of one or more series over a
 * shared x axis, drawn by XChart: labelled axes, a legend below the plot (never over the data),
 * markers on short series so that a single point shows. What it tolerates, so that callers need
 * not clean their data: non-finite points (and x ≤ 0 on a log axis) are left out, a series with no
 * point left is named in a note instead of drawn, a constant series gets a visible range, and a
 * series of more than {@value #MAX_POINTS} points is thinned to the minimum and maximum of each
 * of {@value #MAX_POINTS}/2 buckets (its envelope stays).
 *
 * <pre>{@code
 * LineChart.write(Path.of("sweep.png"), "Dev loss by learning rate", "learning rate", "dev loss", true,
 *         List.of(new LineChart.Series("20 tokens", lrs, losses)));
 * }</pre>
 */
public final class LineChart {
    /** Longest series drawn point by point; longer ones are thinned to their per-bucket extremes. */
    static final int MAX_POINTS = 4000;
    /** Series of at most this many points get a marker on every point. */
    private static final int MARKER_POINTS = 40;

    /** How a series is drawn. */
    public enum Line {
        /** In the next colour of the palette, 2 px wide. */
        NORMAL,
        /** Thin and light grey, behind the others: context such as raw values under a smoothed curve. */
        FAINT
    }

    /**
     * One named curve; the arrays are copied.
     *
     * @param x the x values, as many as y
     * @param y the y values; non-finite ones are left out when drawn
     */
    public record Series(String name, double[] x, double[] y, Line line) {
        public Series {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(line, "line");
            if (name.isBlank()) {
                throw new IllegalArgumentException("a series needs a name for the legend");
            }
            if (x.length != y.length) {
                throw new IllegalArgumentException("series '" + name + "' has " + x.length + " x values but "
                        + y.length + " y values");
            }
            x = x.clone();
            y = y.clone();
        }

        /** A {@link Line#NORMAL} series. */
        public Series(String name, double[] x, double[] y) {
            this(name, x, y, Line.NORMAL);
        }

        @Override
        public double[] x() {
            return x.clone();
        }

        @Override
        public double[] y() {
            return y.clone();
        }
    }

    /** A fixed y-axis range, for values with a natural scale (accuracies in [0, 1]). */
    public record YRange(double min, double max) {
        public YRange {
            if (!(min < max) || !Double.isFinite(min) || !Double.isFinite(max)) {
                throw new IllegalArgumentException("a y range needs finite min < max, got [" + min + ", " + max + "]");
            }
        }
    }

    private LineChart() {}

    /**
     * Draws {@code series} and writes the PNG to {@code png} (atomically, creating its folder).
     *
     * @param logX a logarithmic x axis (points with x ≤ 0 are left out)
     * @throws io.ptune.PtuneException naming the file when it cannot be written
     */
    public static void write(Path png, String title, String xLabel, String yLabel, boolean logX, List<Series> series) {
        write(png, title, xLabel, yLabel, logX, series, null);
    }

    /**
     * {@link #write(Path, String, String, String, boolean, List)} with the y axis fixed to
     * {@code yRange} (null: fitted to the data); points outside it are drawn at the border.
     */
    public static void write(Path png, String title, String xLabel, String yLabel, boolean logX, List<Series> series,
            YRange yRange) {
        Charts.writePng(chart(title, xLabel, yLabel, logX, series, yRange), png);
    }

    /** The chart {@link #write} draws. */
    static XYChart chart(String title, String xLabel, String yLabel, boolean logX, List<Series> series,
            YRange yRange) {
        Objects.requireNonNull(series, "series");
        XYChart chart = new XYChart(Charts.WIDTH, Charts.HEIGHT);
        chart.setTitle(title);
        chart.setXAxisTitle(xLabel);
        chart.setYAxisTitle(yLabel);
        XYStyler styler = chart.getStyler();
        Charts.style(styler);
        styler.setLegendPosition(Styler.LegendPosition.OutsideS);
        styler.setLegendLayout(Styler.LegendLayout.Horizontal);
        styler.setXAxisLogarithmic(logX);
        styler.setMarkerSize(7);

        // Faint series first, so that the others are painted over them.
        List<Series> ordered = new ArrayList<>(series.stream().filter(s -> s.line() == Line.FAINT).toList());
        ordered.addAll(series.stream().filter(s -> s.line() == Line.NORMAL).toList());
        List<String> empty = new ArrayList<>();
        List<Series> drawable = new ArrayList<>();
        double minX = Double.POSITIVE_INFINITY, maxX = Double.NEGATIVE_INFINITY;
        double minY = Double.POSITIVE_INFINITY, maxY = Double.NEGATIVE_INFINITY;
        boolean integerX = true;
        for (Series s : ordered) {
            double[][] points = drawable(s.x, s.y, logX);
            if (points[0].length == 0) {
                empty.add(s.name());
                continue;
            }
            drawable.add(new Series(s.name(), points[0], points[1], s.line()));
            for (int i = 0; i < points[0].length; i++) {
                minX = Math.min(minX, points[0][i]);
                maxX = Math.max(maxX, points[0][i]);
                minY = Math.min(minY, points[1][i]);
                maxY = Math.max(maxY, points[1][i]);
                integerX &= points[0][i] == Math.rint(points[0][i]);
            }
        }
        if (drawable.isEmpty()) {
            // Nothing to draw: an empty frame with the note says so more plainly than no file.
            minX = maxX = logX ? 1 : 0;
            minY = maxY = 0;
        }
        addAxisGuide(chart, minX, maxX, minY, maxY, logX);
        int colour = 0;
        for (Series s : drawable) {
            XYSeries xy = chart.addSeries(uniqueName(chart, s.name()), s.x, s.y);
            xy.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Line);
            Color c = s.line() == Line.FAINT ? Charts.FAINT : Charts.PALETTE[colour++ % Charts.PALETTE.length];
            xy.setLineColor(c);
            xy.setMarkerColor(c);
            xy.setLineStyle(s.line() == Line.FAINT ? Charts.THIN : Charts.NORMAL);
            xy.setMarker(s.x.length <= MARKER_POINTS ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
        }
        styler.setLegendVisible(drawable.size() > 1);
        if (yRange != null) {
            minY = yRange.min();
            maxY = yRange.max();
            styler.setYAxisMin(minY);
            styler.setYAxisMax(maxY);
        } else if (minY == maxY) {
            // A constant series: a range around it, not XChart's single tick.
            double pad = minY == 0 ? 1 : Math.abs(minY) * 0.1;
            minY -= pad;
            maxY += pad;
            styler.setYAxisMin(minY);
            styler.setYAxisMax(maxY);
        }
        if (minX == maxX) {
            styler.setXAxisMin(logX ? minX / 10 : minX - 1);
            styler.setXAxisMax(logX ? maxX * 10 : maxX + 1);
        }
        if (integerX && !logX) {
            // Whole-number x values (optimizer steps, epochs): no "2.5" ticks between them.
            styler.setxAxisTickLabelsFormattingFunction(wholeNumbers());
        }
        double magnitude = Math.max(Math.abs(minY), Math.abs(maxY));
        if (magnitude != 0 && (magnitude < 1e-2 || magnitude >= 1e5)) {
            // Learning rates and the like: 3e-5, not 0.00003.
            styler.setyAxisTickLabelsFormattingFunction(LineChart::scientific);
        } else {
            styler.setyAxisTickLabelsFormattingFunction(decimals(maxY - minY));
        }
        if (logX) {
            styler.setXAxisDecimalPattern("0.##E0");
        }
        if (!empty.isEmpty()) {
            styler.setAnnotationTextPanelFont(new Font(Font.SANS_SERIF, Font.PLAIN, 14));
            chart.addAnnotation(new AnnotationTextPanel("no finite values: " + String.join(", ", empty),
                    Charts.WIDTH * 0.3, Charts.HEIGHT * 0.55, true));
        }
        return chart;
    }

    /** The finite points of a series (x > 0 on a log axis), thinned when there are too many. */
    static double[][] drawable(double[] x, double[] y, boolean logX) {
        double[] fx = new double[x.length];
        double[] fy = new double[y.length];
        int n = 0;
        for (int i = 0; i < x.length; i++) {
            if (Double.isFinite(x[i]) && Double.isFinite(y[i]) && (!logX || x[i] > 0)) {
                fx[n] = x[i];
                fy[n] = y[i];
                n++;
            }
        }
        if (n <= MAX_POINTS) {
            return new double[][] {Arrays.copyOf(fx, n), Arrays.copyOf(fy, n)};
        }
        // Thinned: the smallest and the largest value of each bucket, in x order.
        int buckets = MAX_POINTS / 2;
        double[] tx = new double[2 * buckets];
        double[] ty = new double[2 * buckets];
        int m = 0;
        for (int b = 0; b < buckets; b++) {
            int from = (int) ((long) b * n / buckets);
            int to = (int) ((long) (b + 1) * n / buckets);
            int lo = from, hi = from;
            for (int i = from; i < to; i++) {
                if (fy[i] < fy[lo]) {
                    lo = i;
                }
                if (fy[i] > fy[hi]) {
                    hi = i;
                }
            }
            int first = Math.min(lo, hi), second = Math.max(lo, hi);
            tx[m] = fx[first];
            ty[m++] = fy[first];
            if (second != first) {
                tx[m] = fx[second];
                ty[m++] = fy[second];
            }
        }
        return new double[][] {Arrays.copyOf(tx, m), Arrays.copyOf(ty, m)};
    }

    /**
     * An invisible first series of three points inside the data's range, unevenly spaced. XChart
     * 3.8 puts the ticks at the data values themselves when it finds the (unique, unsorted) values
     * "equally spaced", which it decides with an absolute tolerance of 1e-4: every smooth curve of
     * small values (a learning rate, a flat loss) passes, and each value becomes a tick label. The
     * guide's values come first and break that test, so ticks fall on round numbers; it also
     * gives an empty chart its frame.
     */
    private static void addAxisGuide(XYChart chart, double minX, double maxX, double minY, double maxY, boolean logX) {
        double midX = logX ? minX * Math.pow(maxX / minX, 0.37) : minX + 0.37 * (maxX - minX);
        XYSeries guide = chart.addSeries(" ", new double[] {minX, maxX, midX},
                new double[] {minY, maxY, minY + 0.37 * (maxY - minY)});
        guide.setXYSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
        guide.setMarker(SeriesMarkers.NONE);
        guide.setShowInLegend(false);
    }

    /** XChart needs distinct series names; a repeated legend entry gets a counter. */
    private static String uniqueName(XYChart chart, String name) {
        String unique = name;
        for (int k = 2; chart.getSeriesMap().containsKey(unique); k++) {
            unique = name + " (" + k + ")";
        }
        return unique;
    }

    private static Function<Double, String> wholeNumbers() {
        return v -> v == Math.rint(v) ? String.format(Locale.ROOT, "%,d", v.longValue()) : "";
    }

    /**
     * Tick labels for a range of {@code span}: as many decimals as ticks a twentieth of it apart
     * need, trailing zeros dropped, a leading zero kept (0.25, not .25).
     */
    static Function<Double, String> decimals(double span) {
        int digits = span > 0 ? (int) Math.max(0, Math.min(10, Math.ceil(-Math.log10(span)) + 2)) : 4;
        return v -> {
            String s = String.format(Locale.ROOT, "%." + digits + "f", v);
            s = digits > 0 ? s.replaceAll("\\.?0+$", "") : s;
            return s.equals("-0") ? "0" : s;
        };
    }

    /** {@code v} in short scientific notation: 3e-5, 1.5e-4, 0. */
    static String scientific(double v) {
        if (v == 0) {
            return "0";
        }
        String[] parts = String.format(Locale.ROOT, "%.2e", v).split("e");
        return parts[0].replaceAll("\\.?0+$", "") + "e" + Integer.parseInt(parts[1]);
    }
}

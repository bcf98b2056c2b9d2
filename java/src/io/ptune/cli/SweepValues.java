package io.ptune.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** The values a sweep tries: comma lists ({@code 10,15,20}) and ranges ({@code 1e-4:1e-2:log:5}). */
final class SweepValues {
    private SweepValues() {}

    /** Whole numbers > 0 from a comma list. */
    static List<Integer> parseInts(String text, String flag) {
        List<Integer> values = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            try {
                int value = Integer.parseInt(part.strip());
                if (value <= 0) {
                    throw new NumberFormatException();
                }
                if (!values.contains(value)) {
                    values.add(value);
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(flag + ": '" + part.strip() + "' is not a whole number > 0; write"
                        + " them like 10,15,20");
            }
        }
        return values;
    }

    /**
     * Learning rates: a comma list of positive numbers, or {@code LOW:HIGH:log|lin:COUNT} — COUNT
     * values from LOW to HIGH (both included), evenly spaced in log or linear scale.
     */
    static List<Double> parse(String text) {
        String spec = text.strip();
        if (spec.contains(":")) {
            String[] f = spec.split(":", -1);
            if (f.length != 4 || !(f[2].equals("log") || f[2].equals("lin"))) {
                throw new IllegalArgumentException("--lr '" + spec + "': a range is LOW:HIGH:log|lin:COUNT, e.g."
                        + " 1e-4:1e-2:log:5");
            }
            double low = positive(f[0], spec);
            double high = positive(f[1], spec);
            int count;
            try {
                count = Integer.parseInt(f[3].strip());
            } catch (NumberFormatException e) {
                count = 0;
            }
            if (count < 1 || high < low || (count == 1 && high != low)) {
                throw new IllegalArgumentException("--lr '" + spec + "': need LOW <= HIGH and COUNT >= 2 (or 1 with"
                        + " LOW = HIGH)");
            }
            List<Double> values = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                double t = count == 1 ? 0 : (double) i / (count - 1);
                double value = f[2].equals("log") ? Math.exp(Math.log(low) + t * (Math.log(high) - Math.log(low)))
                        : low + t * (high - low);
                // Round to 4 significant digits so trial names and rows stay readable and stable.
                values.add(Double.parseDouble(String.format(Locale.ROOT, "%.4g", value)));
            }
            return values;
        }
        List<Double> values = new ArrayList<>();
        for (String part : spec.split(",", -1)) {
            double value = positive(part, spec);
            if (!values.contains(value)) {
                values.add(value);
            }
        }
        return values;
    }

    private static double positive(String text, String spec) {
        try {
            double value = Double.parseDouble(text.strip());
            if (value > 0 && Double.isFinite(value)) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("--lr '" + spec + "': '" + text.strip() + "' is not a positive number");
    }

    /** A learning rate as trial names and sweep.csv show it: {@code 0.001}, {@code 3.162e-05}. */
    static String format(double lr) {
        String text = Double.toString(lr);
        return text.replace("E", "e");
    }
}

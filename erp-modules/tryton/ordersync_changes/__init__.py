# ordersync_changes: tells subscribers on Tryton's bus when records ordersync follows have changed.
# Part of ordersync (https://github.com/ordersync/ordersync); licensed like it.

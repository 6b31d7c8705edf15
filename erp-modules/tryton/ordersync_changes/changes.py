"""Signal ordersync when a record it follows has changed, on Tryton's own bus.

ordersync reads the ERP through its JSON-RPC API and polls for changes. With this module activated on a
Tryton running on PostgreSQL with ``[bus] allow_subscribe = True``, every transaction that creates,
writes or deletes a record of a followed model publishes one message on the channel ``ordersync:changes``
naming the models it touched. The message is sent with PostgreSQL's ``NOTIFY`` inside the transaction, so
subscribers hear of it when (and only if) it commits. ordersync long-polls ``/<database>/bus`` with its
usual session and then reads the changes through the API as before: the module never sends data, only
"look now".

The module adds no table and changes no behaviour of Tryton. ``ordersync.change.signal.describe`` tells a
client whether signals can be received here (the database can notify, subscribing is allowed) and on
which channel, under a version number that changes only when this contract does.
"""

from trytond.bus import Bus
from trytond.config import config
from trytond.model import Model
from trytond.pool import PoolMeta
from trytond.rpc import RPC
from trytond.transaction import Transaction

CHANNEL = 'ordersync:changes'
VERSION = 1


class _Signals:
    """One per transaction (joined as a data manager): collects the models written and publishes them
    in one message just before the transaction commits."""

    def __init__(self):
        self.models = set()

    def __eq__(self, other):
        return isinstance(other, _Signals)

    def __hash__(self):
        return hash(_Signals)

    def tpc_begin(self, transaction):
        pass

    def commit(self, transaction):
        pass

    def tpc_vote(self, transaction):
        if self.models:
            Bus.publish(CHANNEL, {'type': 'ordersync.changes', 'models': sorted(self.models)})

    def tpc_finish(self, transaction):
        pass

    def tpc_abort(self, transaction):
        pass


def _signal(model_name):
    transaction = Transaction()
    if not transaction.database.has_channel():
        return
    transaction.join(_Signals()).models.add(model_name)


class ChangeSignal(Model):
    "ordersync change signal"
    __name__ = 'ordersync.change.signal'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({'describe': RPC()})

    @classmethod
    def describe(cls):
        """Whether this database can signal changes to a bus subscriber, and where."""
        transaction = Transaction()
        return {
            'version': VERSION,
            'channel': CHANNEL,
            'push': bool(transaction.database.has_channel()
                and config.getboolean('bus', 'allow_subscribe', default=False)),
            }


class _Signalling:
    @classmethod
    def create(cls, vlist):
        records = super().create(vlist)
        _signal(cls.__name__)
        return records

    @classmethod
    def write(cls, *args):
        super().write(*args)
        _signal(cls.__name__)

    @classmethod
    def delete(cls, records):
        super().delete(records)
        _signal(cls.__name__)


class Move(_Signalling, metaclass=PoolMeta):
    __name__ = 'stock.move'


class ShipmentOut(_Signalling, metaclass=PoolMeta):
    __name__ = 'stock.shipment.out'


class ShipmentOutReturn(_Signalling, metaclass=PoolMeta):
    __name__ = 'stock.shipment.out.return'


class Invoice(_Signalling, metaclass=PoolMeta):
    __name__ = 'account.invoice'


class Sale(_Signalling, metaclass=PoolMeta):
    __name__ = 'sale.sale'


class PriceList(_Signalling, metaclass=PoolMeta):
    __name__ = 'product.price_list'


class PriceListLine(_Signalling, metaclass=PoolMeta):
    __name__ = 'product.price_list.line'
